package classify

import (
	"math/rand"
	"testing"
)

func BenchmarkCNNForward(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	p := &CNNParams{InStd: [3]float64{1, 1, 1}}
	for l := range 4 {
		p.Conv[l] = make([]float32, CNNLayerSize(l))
		p.Bias[l] = make([]float32, CNNLayerOut(l))
		for i := range p.Conv[l] {
			p.Conv[l][i] = float32(rng.NormFloat64() * 0.2)
		}
	}
	n, err := compileCNN(p)
	if err != nil {
		b.Fatal(err)
	}
	sc := newCNNScratch()
	b.ReportAllocs()
	for b.Loop() {
		for i := range sc.in {
			sc.in[i] = 0.3
		}
		n.forward(sc)
	}
}
