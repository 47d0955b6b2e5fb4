package train

import (
	"math/rand"
	"testing"

	"papscan/classify"
)

// BenchmarkCNNTrainStep: one forward and backward pass of the CNN (one
// training sample).
func BenchmarkCNNTrainStep(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	n := newNet()
	for l := range classify.CNNLayers + 1 {
		for i := range n.w[l] {
			n.w[l][i] = float32(rng.NormFloat64() * 0.3)
		}
	}
	sc := newTrainScratch()
	for i := range sc.x {
		sc.x[i] = float32(rng.NormFloat64())
	}
	b.ReportAllocs()
	for b.Loop() {
		p := n.forward(sc)
		n.backward(sc, p, 2, 1)
	}
}
