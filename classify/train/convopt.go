package train

import (
	"math"
	"math/rand"
)

// heInit draws every layer's weights from N(0, 2/fanIn(l)) (He
// initialisation), layer by layer in order, from rng. Biases stay zero.
func heInit(rng *rand.Rand, w [][]float32, fanIn func(l int) int) {
	for l := range w {
		sd := math.Sqrt(2 / float64(fanIn(l)))
		for i := range w[l] {
			w[l][i] = float32(rng.NormFloat64() * sd)
		}
	}
}

// adamW is the optimiser both convolutional trainers use: Adam with
// decoupled weight decay on the weights (not the biases) and a cosine
// learning-rate schedule over steps.
type adamW struct {
	lr, decay float64
	steps     int
	step      int
}

const adamB1, adamB2, adamEps = 0.9, 0.999, 1e-8

// update applies one step to the weights w and biases b with the summed
// gradients gw, gb of a batch of n samples; m1* and m2* are the first
// and second moments, one slice per layer like w and b.
func (o *adamW) update(w, b, gw, gb, m1w, m1b, m2w, m2b [][]float32, n int) {
	o.step++
	lr := o.lr * 0.5 * (1 + math.Cos(math.Pi*float64(o.step)/float64(o.steps)))
	bc1 := 1 - math.Pow(adamB1, float64(o.step))
	bc2 := 1 - math.Pow(adamB2, float64(o.step))
	inv := 1 / float32(n)
	upd := func(p, g, mm, vv []float32, decay bool) {
		for i := range p {
			gi := g[i] * inv
			mm[i] = adamB1*mm[i] + (1-adamB1)*gi
			vv[i] = adamB2*vv[i] + (1-adamB2)*gi*gi
			d := float64(mm[i]) / bc1 / (math.Sqrt(float64(vv[i])/bc2) + adamEps)
			if decay {
				d += o.decay * float64(p[i])
			}
			p[i] -= float32(lr * d)
		}
	}
	for l := range w {
		upd(w[l], gw[l], m1w[l], m2w[l], true)
		upd(b[l], gb[l], m1b[l], m2b[l], false)
	}
}
