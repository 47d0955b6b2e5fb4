package adam

import (
	"math"
	"testing"
)

// TestStep: Adam minimises a quadratic; the L2 penalty pulls a weight
// towards 0 but leaves a bias where the loss puts it.
func TestStep(t *testing.T) {
	target := []float64{3, 3} // weight, bias
	p := []float64{0, 0}
	g := make([]float64, 2)
	o := New(2, 0.05, 1, func(i int) bool { return i == 1 })
	for range 4000 {
		for i := range p {
			g[i] = p[i] - target[i] // gradient of ½(p-target)²
		}
		o.Step(p, g)
	}
	// Weight: minimum of ½(p-3)² + ½p² is 1.5; bias: 3.
	if math.Abs(p[0]-1.5) > 0.01 || math.Abs(p[1]-3) > 0.01 {
		t.Errorf("p = %v, want [1.5 3]", p)
	}
}

// TestPerceptronBias: two hidden rows of 3 inputs + bias, then two output
// rows of 2 hidden + bias.
func TestPerceptronBias(t *testing.T) {
	var got []int
	for i := range 14 {
		if PerceptronBias(i, 8, 4, 3) {
			got = append(got, i)
		}
	}
	if want := []int{3, 7, 10, 13}; len(got) != len(want) || got[0] != 3 || got[1] != 7 || got[2] != 10 || got[3] != 13 {
		t.Errorf("biases at %v, want %v", got, want)
	}
}
