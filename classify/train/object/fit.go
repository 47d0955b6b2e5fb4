package object

import (
	"math"
	"math/rand"

	"papscan/classify"
	"papscan/classify/train/internal/adam"
)

// FitOptions are the hyper-parameters of one fit.
type FitOptions struct {
	// Hidden is the number of hidden ReLU units (0: logistic regression).
	Hidden int
	// Iters of full-batch Adam, learning rate and L2 penalty.
	Iters  int
	LR     float64
	Lambda float64
	Seed   int64
	// Ensemble fits this many networks from different initial weights
	// (seeds Seed, Seed+1, ...) and averages their logits (0 or 1: one).
	// The average is itself one network (the hidden layers side by side,
	// the output weights divided by Ensemble), so the filter's format and
	// cost per unit do not change: Ensemble·Hidden must be <= 32.
	Ensemble int
}

// DefaultFit returns the hyper-parameters of the shipped filter.
func DefaultFit() FitOptions {
	return FitOptions{Hidden: 8, Iters: 800, LR: 0.03, Lambda: 1e-3, Seed: 1, Ensemble: 4}
}

// Fit trains a weighted binary classifier with full-batch Adam on
// standardised features. The classes are balanced (the negatives' weights
// are scaled to total the positives'). It is deterministic for a given Seed.
// With o.Ensemble > 1 it returns the logit average of that many fits.
func Fit(samples []Sample, o FitOptions) classify.ObjectHead {
	k := max(o.Ensemble, 1)
	if k == 1 {
		return fit(samples, o)
	}
	var h classify.ObjectHead
	var bias float64
	for i := range k {
		oi := o
		oi.Seed = o.Seed + int64(i)
		hi := fit(samples, oi)
		if i == 0 {
			h.Mean, h.Std = hi.Mean, hi.Std
		}
		if o.Hidden == 0 {
			if i == 0 {
				h.Weights = make([]float64, len(hi.Weights))
			}
			for j, v := range hi.Weights {
				h.Weights[j] += v / float64(k)
			}
			continue
		}
		h.Hidden = append(h.Hidden, hi.Hidden...)
		for _, v := range hi.Weights[:o.Hidden] {
			h.Weights = append(h.Weights, v/float64(k))
		}
		bias += hi.Weights[o.Hidden] / float64(k)
	}
	if o.Hidden > 0 {
		h.Weights = append(h.Weights, bias)
	}
	return h
}

func fit(samples []Sample, o FitOptions) classify.ObjectHead {
	const nf = classify.NumObjectFeatures
	n := len(samples)
	h := classify.ObjectHead{Mean: make([]float64, nf), Std: make([]float64, nf)}
	for _, s := range samples {
		for j := range nf {
			h.Mean[j] += s.V[j]
		}
	}
	for j := range nf {
		h.Mean[j] /= float64(max(n, 1))
	}
	for _, s := range samples {
		for j := range nf {
			d := s.V[j] - h.Mean[j]
			h.Std[j] += d * d
		}
	}
	for j := range nf {
		h.Std[j] = math.Sqrt(h.Std[j] / float64(max(n, 1)))
		if !(h.Std[j] > 1e-9) {
			h.Std[j] = 1
		}
	}
	x := make([][nf]float64, n)
	y := make([]float64, n)
	wt := make([]float64, n)
	var wp, wn float64
	for i, s := range samples {
		for j := range nf {
			x[i][j] = classify.ClipZ((s.V[j] - h.Mean[j]) / h.Std[j])
		}
		if s.Label {
			y[i] = 1
			wp += s.Weight
		} else {
			wn += s.Weight
		}
	}
	scaleNeg := 1.0
	if wn > 0 && wp > 0 {
		scaleNeg = wp / wn
	}
	var tot float64
	for i, s := range samples {
		wt[i] = s.Weight
		if !s.Label {
			wt[i] *= scaleNeg
		}
		tot += wt[i]
	}
	for i := range wt {
		wt[i] /= tot
	}
	H := o.Hidden
	rng := rand.New(rand.NewSource(o.Seed))
	// Parameters: hidden (H×(nf+1)) then output ((H or nf)+1).
	in := nf
	if H > 0 {
		in = H
	}
	np := H*(nf+1) + in + 1
	p := make([]float64, np)
	for i := 0; i < H*(nf+1); i++ {
		if i%(nf+1) != nf {
			p[i] = rng.NormFloat64() * math.Sqrt(2.0/nf)
		}
	}
	if H > 0 {
		for i := 0; i < in; i++ {
			p[H*(nf+1)+i] = rng.NormFloat64() * math.Sqrt(1.0/float64(H))
		}
	}
	g := make([]float64, np)
	opt := adam.New(np, o.LR, o.Lambda, func(i int) bool { return adam.PerceptronBias(i, H*(nf+1), nf+1, in+1) })
	act := make([]float64, max(H, 1))
	for range o.Iters {
		clear(g)
		out := p[H*(nf+1):]
		gout := g[H*(nf+1):]
		for i := range x {
			xi := &x[i]
			s := out[in]
			if H == 0 {
				for j, v := range xi {
					s += out[j] * v
				}
			} else {
				for k := 0; k < H; k++ {
					r := p[k*(nf+1) : (k+1)*(nf+1)]
					a := r[nf]
					for j, v := range xi {
						a += r[j] * v
					}
					act[k] = max(a, 0)
					s += out[k] * act[k]
				}
			}
			e := (1/(1+math.Exp(-s)) - y[i]) * wt[i]
			gout[in] += e
			if H == 0 {
				for j, v := range xi {
					gout[j] += e * v
				}
				continue
			}
			for k := 0; k < H; k++ {
				gout[k] += e * act[k]
				if act[k] > 0 {
					d := e * out[k]
					gr := g[k*(nf+1) : (k+1)*(nf+1)]
					for j, v := range xi {
						gr[j] += d * v
					}
					gr[nf] += d
				}
			}
		}
		opt.Step(p, g)
	}
	for k := 0; k < H; k++ {
		h.Hidden = append(h.Hidden, append([]float64(nil), p[k*(nf+1):(k+1)*(nf+1)]...))
	}
	h.Weights = append([]float64(nil), p[H*(nf+1):]...)
	return h
}
