package classify

import (
	"math/rand"
	"testing"
)

func BenchmarkCNNForward(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	p := &CNNParams{InStd: [3]float64{1, 1, 1}}
	for l := range CNNLayers + 1 {
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
	var crop [CNNInputLen]float32
	for i := range crop {
		crop[i] = float32(rng.Float64())
	}
	sc.crop = &crop
	b.ReportAllocs()
	for b.Loop() {
		n.forward(sc)
	}
}
