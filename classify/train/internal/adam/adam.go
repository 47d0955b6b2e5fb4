package adam

import "math"

// Adam's moment decays and denominator guard (Kingma & Ba's defaults).
const (
	beta1 = 0.9
	beta2 = 0.999
	eps   = 1e-8
)

// Optimizer holds the moments of one parameter vector. It is not safe for
// concurrent use.
type Optimizer struct {
	lr, lambda float64
	decay      []bool // decay[i]: p[i] takes the L2 penalty
	m1, m2     []float64
	it         int
}

// New returns an optimiser for n parameters with learning rate lr and L2
// penalty lambda on every parameter i for which bias(i) is false.
func New(n int, lr, lambda float64, bias func(i int) bool) *Optimizer {
	o := &Optimizer{lr: lr, lambda: lambda, decay: make([]bool, n), m1: make([]float64, n), m2: make([]float64, n)}
	for i := range o.decay {
		o.decay[i] = !bias(i)
	}
	return o
}

// Step applies one update to p from the gradient g (both of length n).
func (o *Optimizer) Step(p, g []float64) {
	o.it++
	c1 := 1 - math.Pow(beta1, float64(o.it))
	c2 := 1 - math.Pow(beta2, float64(o.it))
	for i := range p {
		gi := g[i]
		if o.decay[i] {
			gi += o.lambda * p[i]
		}
		o.m1[i] = beta1*o.m1[i] + (1-beta1)*gi
		o.m2[i] = beta2*o.m2[i] + (1-beta2)*gi*gi
		p[i] -= o.lr * (o.m1[i] / c1) / (math.Sqrt(o.m2[i]/c2) + eps)
	}
}

// PerceptronBias reports whether parameter i of a one-hidden-layer
// perceptron is a bias, in the layout both trainers use: nh values of
// hidden rows of rowIn values each, then output rows of rowOut values
// each, every row's bias last.
func PerceptronBias(i, nh, rowIn, rowOut int) bool {
	if i < nh {
		return i%rowIn == rowIn-1
	}
	return (i-nh)%rowOut == rowOut-1
}
