package train

import (
	"math"
	"math/rand"

	"papscan/classify"
	"papscan/classify/train/internal/adam"
)

// FitOptions are the hyper-parameters of one fit.
type FitOptions struct {
	// Hidden is the number of hidden units (0: logistic regression).
	Hidden int
	// Iters of full-batch Adam, learning rate and L2 penalty.
	Iters  int
	LR     float64
	Lambda float64
	// HighGradeWeight multiplies the (class-balanced) weight of high-grade
	// cells: missing HSIL+ costs most.
	HighGradeWeight float64
	// ExtraWeight is the total weight of the field negatives relative to
	// one class.
	ExtraWeight float64
	// OtherWeight is the total weight of the cells of other laboratories
	// (Sample.Other) relative to one class (within them, each class keeps
	// its share).
	OtherWeight float64
	// HighEnsemble is the number of high-grade heads (trained on NILM and
	// high-grade cells only, seeds Seed+1…; see classify.ModelParams.High).
	HighEnsemble int
	// HighExtraWeight is ExtraWeight for the high-grade heads.
	HighExtraWeight float64
	Seed            int64
}

// fitHigh fits the high-grade ensemble on the NILM (including field
// negatives) and high-grade samples.
func fitHigh(samples []Sample, o FitOptions) []classify.Head {
	if o.HighEnsemble <= 0 {
		return nil
	}
	var sub []Sample
	for _, s := range samples {
		if s.Class == classify.NILM || s.Class.HighGrade() {
			sub = append(sub, s)
		}
	}
	var hs []classify.Head
	for k := range o.HighEnsemble {
		fo := o
		fo.Seed = o.Seed + int64(k) + 1
		fo.ExtraWeight = o.HighExtraWeight
		hs = append(hs, fit(sub, fo))
	}
	return hs
}

// DefaultFit returns the hyper-parameters of the shipped model.
func DefaultFit() FitOptions {
	return FitOptions{Hidden: 16, Iters: 600, LR: 0.01, Lambda: 3e-3, HighGradeWeight: 1.5, ExtraWeight: 1, HighEnsemble: 0, HighExtraWeight: 0.3, Seed: 1}
}

// fit trains a class-weighted softmax classifier (optionally with one ReLU
// hidden layer) on samples with full-batch Adam. It is deterministic for a
// given Seed.
func fit(samples []Sample, o FitOptions) classify.Head {
	const nf = classify.NumFeatures
	const K = classify.NumClasses
	n := len(samples)
	mean, std := make([]float64, nf), make([]float64, nf)
	for _, s := range samples {
		for j := range nf {
			mean[j] += float64(s.F[j])
		}
	}
	for j := range nf {
		mean[j] /= float64(n)
	}
	for _, s := range samples {
		for j := range nf {
			d := float64(s.F[j]) - mean[j]
			std[j] += d * d
		}
	}
	for j := range nf {
		std[j] = math.Sqrt(std[j] / float64(n))
		if std[j] < 1e-9 {
			std[j] = 1
		}
	}
	X := make([][]float64, n)
	for i, s := range samples {
		X[i] = make([]float64, nf)
		for j := range nf {
			X[i][j] = math.Max(-8, math.Min(8, (float64(s.F[j])-mean[j])/std[j]))
		}
	}
	cw, ew, ow, norm := classWeights(samples, o)
	H := o.Hidden
	in := nf
	if H > 0 {
		in = H
	}
	rng := rand.New(rand.NewSource(o.Seed))
	// Parameters: hidden (H x nf+1) then output (K x in+1), flat.
	nh := H * (nf + 1)
	np := nh + K*(in+1)
	w := make([]float64, np)
	for i := 0; i < nh; i++ {
		w[i] = rng.NormFloat64() * math.Sqrt(2.0/float64(nf))
	}
	for i := nh; i < np; i++ {
		if H > 0 {
			w[i] = rng.NormFloat64() * math.Sqrt(1.0/float64(H))
		}
	}
	g := make([]float64, np)
	opt := adam.New(np, o.LR, o.Lambda, func(k int) bool { return adam.PerceptronBias(k, nh, nf+1, in+1) })
	act := make([]float64, max(H, 1))
	dact := make([]float64, max(H, 1))
	var p [K]float64
	for range o.Iters {
		clear(g)
		for i, s := range samples {
			x := X[i]
			v := x
			if H > 0 {
				for h := range H {
					row := w[h*(nf+1) : (h+1)*(nf+1)]
					z := row[nf]
					for j, xv := range x {
						z += row[j] * xv
					}
					act[h] = math.Max(z, 0)
				}
				v = act[:H]
			}
			mx := math.Inf(-1)
			for c := range K {
				row := w[nh+c*(in+1) : nh+(c+1)*(in+1)]
				z := row[in]
				for j, xv := range v {
					z += row[j] * xv
				}
				p[c] = z
				mx = math.Max(mx, z)
			}
			var sum float64
			for c := range K {
				p[c] = math.Exp(p[c] - mx)
				sum += p[c]
			}
			wi := cw[s.Class] / norm
			if s.Extra {
				wi = ew / norm
			} else if s.Other {
				wi = ow / norm
			}
			if H > 0 {
				clear(dact[:H])
			}
			for c := range K {
				d := p[c] / sum
				if classify.Class(c) == s.Class {
					d--
				}
				d *= wi
				off := nh + c*(in+1)
				row := w[off : off+in+1]
				gr := g[off : off+in+1]
				for j, xv := range v {
					gr[j] += d * xv
					if H > 0 {
						dact[j] += d * row[j]
					}
				}
				gr[in] += d
			}
			if H > 0 {
				for h := range H {
					if act[h] <= 0 {
						continue
					}
					d := dact[h]
					gr := g[h*(nf+1) : (h+1)*(nf+1)]
					for j, xv := range x {
						gr[j] += d * xv
					}
					gr[nf] += d
				}
			}
		}
		opt.Step(w, g)
	}
	h := classify.Head{Mean: mean, Std: std}
	for r := range H {
		h.Hidden = append(h.Hidden, append([]float64(nil), w[r*(nf+1):(r+1)*(nf+1)]...))
	}
	for c := range K {
		h.Weights = append(h.Weights, append([]float64(nil), w[nh+c*(in+1):nh+(c+1)*(in+1)]...))
	}
	return h
}

// classWeights returns the loss weight of each class (cw), of the field
// negatives (ew) and of other laboratories' cells (ow), and their total
// over the samples (norm): classes balanced, high grade times
// HighGradeWeight, field negatives together ExtraWeight times the mean
// class, other labs together OtherWeight times it.
func classWeights(samples []Sample, o FitOptions) (cw [classify.NumClasses]float64, ew, ow, norm float64) {
	const K = classify.NumClasses
	n := len(samples)
	var cnt [K]float64
	var nExtra, nOther float64
	for _, s := range samples {
		switch {
		case s.Extra:
			nExtra++
		case s.Other:
			nOther++
		default:
			cnt[s.Class]++
		}
	}
	present := 0.0
	for _, c := range cnt {
		if c > 0 {
			present++
		}
	}
	for c := range cw {
		if cnt[c] > 0 {
			cw[c] = float64(n) / (present * cnt[c])
			if classify.Class(c).HighGrade() {
				cw[c] *= o.HighGradeWeight
			}
			norm += cw[c] * cnt[c]
		}
	}
	// Field negatives (Sample.Extra) together weigh ExtraWeight times the
	// mean class.
	if nExtra > 0 {
		ew = float64(n) / (present * nExtra) * o.ExtraWeight
		norm += ew * nExtra
	}
	// Other laboratories' cells together weigh OtherWeight times the mean
	// class.
	if nOther > 0 {
		ow = float64(n) / (present * nOther) * o.OtherWeight
		norm += ow * nOther
	}
	return cw, ew, ow, norm
}
