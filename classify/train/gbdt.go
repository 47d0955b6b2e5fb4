package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"sort"

	"papscan/classify"
)

// TreeOptions are the hyper-parameters of the gradient-boosted tree head
// (TreeHead): six-class softmax boosting of full binary trees on
// histogram bins of the raw features, with the class weights of the
// perceptron (FitOptions).
type TreeOptions struct {
	Rounds int     // boosting rounds (one tree per class each)
	Depth  int     // depth of every tree
	LR     float64 // shrinkage
	Lambda float64 // L2 penalty on leaf values
	// MinHess is the least summed hessian a child may have.
	MinHess float64
	// Bins is the number of histogram bins per feature (at most 256).
	Bins int
	// RowFrac and ColFrac are the fractions of samples and features drawn
	// (with Seed) for each round.
	RowFrac, ColFrac float64
	Seed             int64
}

// DefaultTrees returns the tree head's hyper-parameters.
func DefaultTrees() TreeOptions {
	return TreeOptions{Rounds: 150, Depth: 3, LR: 0.1, Lambda: 1, MinHess: 0.5, Bins: 32, RowFrac: 0.8, ColFrac: 0.8, Seed: 1}
}

// sampleWeights returns each sample's weight in the perceptron's loss
// (class-balanced, high grade times HighGradeWeight, field negatives and
// other laboratories' cells weighing ExtraWeight and OtherWeight classes),
// scaled to a mean of 1.
func sampleWeights(samples []Sample, o FitOptions) []float64 {
	n := len(samples)
	cw, ew, ow, norm := classWeights(samples, o)
	w := make([]float64, n)
	for i, s := range samples {
		switch {
		case s.Extra:
			w[i] = ew
		case s.Other:
			w[i] = ow
		default:
			w[i] = cw[s.Class]
		}
		w[i] *= float64(n) / norm
	}
	return w
}

// binCuts returns up to bins−1 increasing cut points of the values of
// feature j (quantiles of its distinct values; NaN ignored).
func binCuts(samples []Sample, j, bins int) []float32 {
	v := make([]float32, 0, len(samples))
	for _, s := range samples {
		if x := s.F[j]; !math.IsNaN(float64(x)) {
			v = append(v, x)
		}
	}
	sort.Slice(v, func(a, b int) bool { return v[a] < v[b] })
	var cuts []float32
	for b := 1; b < bins; b++ {
		k := b * len(v) / bins
		if k <= 0 || k >= len(v) {
			continue
		}
		c := v[k]
		if v[k-1] == c {
			// Cut between distinct values only: at the next larger one.
			for k < len(v) && v[k] == c {
				k++
			}
			if k == len(v) {
				continue
			}
			c = v[k]
		}
		if len(cuts) == 0 || c > cuts[len(cuts)-1] {
			cuts = append(cuts, c)
		}
	}
	return cuts
}

// binOf is the bin of x: the number of cuts <= x (NaN: 0, the left end,
// as TreeHead sends NaN left).
func binOf(cuts []float32, x float32) uint8 {
	if math.IsNaN(float64(x)) {
		return 0
	}
	return uint8(sort.Search(len(cuts), func(i int) bool { return cuts[i] > x }))
}

// fitTrees fits the gradient-boosted tree head on samples (deterministic
// for a given Seed).
func fitTrees(samples []Sample, fo FitOptions, o TreeOptions) *TreeHead {
	const K = classify.NumClasses
	const nf = classify.NumFeatures
	n := len(samples)
	w := sampleWeights(samples, fo)
	cuts := make([][]float32, nf)
	bins := make([][]uint8, nf) // bins[j][i]
	for j := range nf {
		cuts[j] = binCuts(samples, j, o.Bins)
		bins[j] = make([]uint8, n)
		for i, s := range samples {
			bins[j][i] = binOf(cuts[j], s.F[j])
		}
	}
	// Base scores: weighted log class priors.
	var prior [K]float64
	var tw float64
	for i, s := range samples {
		prior[s.Class] += w[i]
		tw += w[i]
	}
	h := &TreeHead{Depth: o.Depth}
	for c := range K {
		h.Base[c] = math.Log(math.Max(prior[c]/tw, 1e-6))
	}
	score := make([][K]float64, n)
	for i := range score {
		score[i] = h.Base
	}
	rng := rand.New(rand.NewSource(o.Seed))
	grad, hess := make([]float64, n), make([]float64, n)
	prob := make([][K]float64, n)
	node := make([]int32, n)
	rows := make([]int, 0, n)
	nodes := 1<<o.Depth - 1
	for range o.Rounds {
		for i := range n {
			mx := math.Inf(-1)
			for c := range K {
				mx = math.Max(mx, score[i][c])
			}
			var sum float64
			for c := range K {
				prob[i][c] = math.Exp(score[i][c] - mx)
				sum += prob[i][c]
			}
			for c := range K {
				prob[i][c] /= sum
			}
		}
		rows = rows[:0]
		for i := range n {
			if rng.Float64() < o.RowFrac {
				rows = append(rows, i)
			}
		}
		var cols []int
		for j := range nf {
			if rng.Float64() < o.ColFrac && len(cuts[j]) > 0 {
				cols = append(cols, j)
			}
		}
		for c := range K {
			for i, s := range samples {
				p := prob[i][c]
				y := 0.0
				if int(s.Class) == c {
					y = 1
				}
				grad[i] = w[i] * (p - y)
				hess[i] = w[i] * math.Max(p*(1-p), 1e-6)
			}
			t := growTree(rows, cols, bins, cuts, grad, hess, node, o, nodes)
			for i, s := range samples {
				k := 0
				for range o.Depth {
					if s.F[t.Features[k]] >= t.Thresholds[k] {
						k = 2*k + 2
					} else {
						k = 2*k + 1
					}
				}
				score[i][c] += float64(t.Leaves[k-nodes])
			}
			h.Trees = append(h.Trees, t)
		}
	}
	return h
}

// growTree grows one full binary tree of depth o.Depth, level by level, on
// rows (node holds each row's current node), choosing each node's best
// split over cols by the second-order gain. A node that cannot split sends
// every row left (threshold +max float32) and both its subtrees repeat its
// leaf value.
func growTree(rows, cols []int, bins [][]uint8, cuts [][]float32, grad, hess []float64, node []int32, o TreeOptions, nodes int) Tree {
	t := Tree{Features: make([]uint8, nodes), Thresholds: make([]float32, nodes), Leaves: make([]float32, nodes+1)}
	for _, i := range rows {
		node[i] = 0
	}
	first := 0
	gh := make([]float64, 2*(1<<(o.Depth-1))*256)
	for d := range o.Depth {
		width := 1 << d
		G, H := make([]float64, width), make([]float64, width)
		for _, i := range rows {
			k := int(node[i]) - first
			G[k] += grad[i]
			H[k] += hess[i]
		}
		bestGain := make([]float64, width)
		bestF, bestB := make([]int, width), make([]int, width)
		for k := range width {
			bestF[k] = -1
		}
		for _, j := range cols {
			nb := len(cuts[j]) + 1
			clear(gh[:2*width*nb])
			bj := bins[j]
			for _, i := range rows {
				at := 2 * ((int(node[i])-first)*nb + int(bj[i]))
				gh[at] += grad[i]
				gh[at+1] += hess[i]
			}
			for k := range width {
				if H[k] < 2*o.MinHess {
					continue
				}
				parent := G[k] * G[k] / (H[k] + o.Lambda)
				var gl, hl float64
				row := gh[2*k*nb : 2*(k+1)*nb]
				for b := 0; b < nb-1; b++ {
					gl += row[2*b]
					hl += row[2*b+1]
					gr, hr := G[k]-gl, H[k]-hl
					if hl < o.MinHess || hr < o.MinHess {
						continue
					}
					if g := gl*gl/(hl+o.Lambda) + gr*gr/(hr+o.Lambda) - parent; g > bestGain[k]+1e-12 {
						bestGain[k], bestF[k], bestB[k] = g, j, b
					}
				}
			}
		}
		for k := range width {
			id := first + k
			if bestF[k] < 0 {
				t.Features[id], t.Thresholds[id] = 0, math.MaxFloat32
			} else {
				t.Features[id], t.Thresholds[id] = uint8(bestF[k]), cuts[bestF[k]][bestB[k]]
			}
		}
		for _, i := range rows {
			id := int(node[i])
			if b := bins[t.Features[id]][i]; b > 0 && t.Thresholds[id] != math.MaxFloat32 && cuts[t.Features[id]][b-1] >= t.Thresholds[id] {
				node[i] = int32(2*id + 2)
			} else {
				node[i] = int32(2*id + 1)
			}
		}
		first = 2*first + 1
	}
	// Leaf values: Newton step, shrunk.
	G, H := make([]float64, nodes+1), make([]float64, nodes+1)
	for _, i := range rows {
		k := int(node[i]) - nodes
		G[k] += grad[i]
		H[k] += hess[i]
	}
	for k := range G {
		t.Leaves[k] = float32(-o.LR * G[k] / (H[k] + o.Lambda))
	}
	return t
}

// MaxTreeDepth is the deepest tree a TreeHead may hold.
const MaxTreeDepth = 8

// TreeHead is a gradient-boosted tree classifier on the raw feature vector
// (six classes, softmax of the summed leaf values). Every tree is a full
// binary tree of depth Depth stored in heap order: internal node i tests
// Features[i] against Thresholds[i] (right when x >= threshold, else left,
// NaN left) and has children 2i+1 and 2i+2; the 2^Depth leaves follow.
// Tree r·classify.NumClasses+c adds its leaf to class c's score.
type TreeHead struct {
	Depth int                          `json:"depth"`
	Base  [classify.NumClasses]float64 `json:"base"` // initial class scores
	Trees []Tree                       `json:"trees"`
}

// Tree is one tree of a TreeHead: 2^Depth−1 internal nodes (feature index
// and threshold) and 2^Depth leaf values.
type Tree struct {
	Features   []uint8   `json:"f"`
	Thresholds []float32 `json:"t"`
	Leaves     []float32 `json:"v"`
}

// trees is a compiled TreeHead: flat arrays, one stride per tree.
type trees struct {
	depth, nodes, leaves int
	base                 [classify.NumClasses]float32
	feat                 []uint8
	thr                  []float32
	leaf                 []float32
	n                    int // number of trees
}

func compileTrees(h *TreeHead) (*trees, error) {
	if h.Depth < 1 || h.Depth > MaxTreeDepth {
		return nil, fmt.Errorf("train: tree head depth %d must be in [1, %d]", h.Depth, MaxTreeDepth)
	}
	if len(h.Trees) == 0 || len(h.Trees)%classify.NumClasses != 0 {
		return nil, fmt.Errorf("train: tree head has %d trees, want a multiple of %d", len(h.Trees), classify.NumClasses)
	}
	t := &trees{depth: h.Depth, nodes: 1<<h.Depth - 1, leaves: 1 << h.Depth, n: len(h.Trees)}
	for c, v := range h.Base {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errors.New("train: tree head base is not finite")
		}
		t.base[c] = float32(v)
	}
	t.feat = make([]uint8, 0, t.n*t.nodes)
	t.thr = make([]float32, 0, t.n*t.nodes)
	t.leaf = make([]float32, 0, t.n*t.leaves)
	for k, tr := range h.Trees {
		if len(tr.Features) != t.nodes || len(tr.Thresholds) != t.nodes || len(tr.Leaves) != t.leaves {
			return nil, fmt.Errorf("train: tree %d has %d features, %d thresholds and %d leaves, want %d, %d and %d",
				k, len(tr.Features), len(tr.Thresholds), len(tr.Leaves), t.nodes, t.nodes, t.leaves)
		}
		for _, f := range tr.Features {
			if int(f) >= classify.NumFeatures {
				return nil, fmt.Errorf("train: tree %d tests feature %d, there are %d", k, f, classify.NumFeatures)
			}
		}
		for _, v := range tr.Leaves {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("train: tree %d has a leaf that is not finite", k)
			}
		}
		t.feat = append(t.feat, tr.Features...)
		t.thr = append(t.thr, tr.Thresholds...)
		t.leaf = append(t.leaf, tr.Leaves...)
	}
	return t, nil
}

// predict returns the class probabilities of feature vector f.
func (t *trees) predict(f *classify.Features) [classify.NumClasses]float32 {
	s := t.base
	for k := range t.n {
		feat := t.feat[k*t.nodes : (k+1)*t.nodes]
		thr := t.thr[k*t.nodes : (k+1)*t.nodes]
		i := 0
		for range t.depth {
			if f[feat[i]] >= thr[i] {
				i = 2*i + 2
			} else {
				i = 2*i + 1
			}
		}
		s[k%classify.NumClasses] += t.leaf[k*t.leaves+i-t.nodes]
	}
	return softmax6(s)
}

// softmax6 is the softmax of six scores.
func softmax6(s [classify.NumClasses]float32) [classify.NumClasses]float32 {
	mx := s[0]
	for _, v := range s[1:] {
		mx = max(mx, v)
	}
	var sum float64
	var e [classify.NumClasses]float64
	for c, v := range s {
		e[c] = math.Exp(float64(v - mx))
		sum += e[c]
	}
	var p [classify.NumClasses]float32
	for c := range p {
		p[c] = float32(e[c] / sum)
	}
	return p
}

// PredictTrees returns the class probabilities of the tree head h for
// each feature vector of fs (training and tests; a Model compiles its head
// once).
func PredictTrees(h *TreeHead, fs []classify.Features) ([][classify.NumClasses]float32, error) {
	t, err := compileTrees(h)
	if err != nil {
		return nil, err
	}
	out := make([][classify.NumClasses]float32, len(fs))
	for i := range fs {
		out[i] = t.predict(&fs[i])
	}
	return out, nil
}
