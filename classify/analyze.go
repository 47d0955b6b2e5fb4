package classify

import "image"

// Cell is one classified cell.
type Cell struct {
	Nucleus
	// Probs holds the class probabilities, indexed by Class.
	Probs [NumClasses]float32 `json:"probs"`
	// Class is the most probable class.
	Class Class `json:"class"`
	// Score is the suspicion 1 − P(NILM), in [0, 1]
	// (see SuspicionScore); it ranks cells for the review gallery.
	Score float32 `json:"score"`
	// Crop is a copy of the tile around the nucleus (owned by the Cell), or nil
	// when the cell's score was below the Analyzer's CropMinScore.
	Crop *image.RGBA `json:"-"`
	// StageX and StageY are the nucleus position on the stage in µm, filled
	// by the caller.
	StageX float64 `json:"stage_x_um"`
	StageY float64 `json:"stage_y_um"`
	// Tile is the caller's tile index.
	Tile int `json:"tile"`
}

// HighGrade reports whether P(ASC-H)+P(HSIL)+P(SCC) >= threshold.
func (c *Cell) HighGrade(threshold float64) bool {
	return float64(HighGradeProb(c.Probs)) >= threshold
}

// LowGrade reports whether P(ASC-US)+P(LSIL) >= threshold.
func (c *Cell) LowGrade(threshold float64) bool {
	return float64(LowGradeProb(c.Probs)) >= threshold
}

// Default crop settings of an Analyzer.
const (
	DefaultCropSize     = 64
	DefaultCropMinScore = 0.5
)

// Analyzer detects and classifies the cells of a tile. It owns a Detector, so
// it is not safe for concurrent use: one per worker. The Model is shared.
type Analyzer struct {
	Detector *Detector
	Model    *Model
	// CropSize is the side in px of the crop kept with a suspicious cell
	// (default DefaultCropSize).
	CropSize int
	// CropMinScore: a crop is copied only for cells with Score >= CropMinScore
	// (default DefaultCropMinScore). Low-suspicion cells, the vast majority,
	// carry no pixels, so memory stays flat over a slide; set it to 0 to keep
	// every crop, or above 1 to keep none.
	CropMinScore float32
	// SkipEdge drops nuclei that touch the tile border (scans with overlapping
	// tiles see them whole in a neighbour). Default false.
	SkipEdge bool

	balanced *image.RGBA // white-balanced tile (Model.ForModel), reused
}

// NewAnalyzer returns an Analyzer with its own Detector.
func NewAnalyzer(opts DetectOptions, model *Model) *Analyzer {
	return &Analyzer{Detector: NewDetector(opts), Model: model, CropSize: DefaultCropSize, CropMinScore: DefaultCropMinScore}
}

// Analyze detects the nuclei of img and classifies each. The returned slice
// and its crops are freshly allocated and owned by the caller.
func (a *Analyzer) Analyze(img *image.RGBA) []Cell {
	ns := a.Detector.Detect(img)
	cells := make([]Cell, 0, len(ns))
	in := img // what the model reads; crops keep the camera's colours
	if len(ns) > 0 {
		in = a.Model.ForModelOwnGlass(img, &a.balanced)
	}
	for _, n := range ns {
		if a.SkipEdge && n.Edge {
			continue
		}
		c := a.Model.Classify(in, n)
		if c.Score >= a.CropMinScore {
			c.Crop = CropAround(img, n.X, n.Y, a.CropSize)
		}
		cells = append(cells, c)
	}
	return cells
}

// CropAround copies a size×size window of img centred on (x, y); parts outside
// the image are white.
func CropAround(img *image.RGBA, x, y float64, size int) *image.RGBA {
	if size <= 0 {
		size = DefaultCropSize
	}
	out := image.NewRGBA(image.Rect(0, 0, size, size))
	for i := range out.Pix {
		out.Pix[i] = 255
	}
	x0 := int(x+0.5) - size/2
	y0 := int(y+0.5) - size/2
	src := image.Rect(x0, y0, x0+size, y0+size).Intersect(img.Bounds())
	for yy := src.Min.Y; yy < src.Max.Y; yy++ {
		so := img.PixOffset(src.Min.X, yy)
		do := out.PixOffset(src.Min.X-x0, yy-y0)
		copy(out.Pix[do:do+4*src.Dx()], img.Pix[so:so+4*src.Dx()])
	}
	return out
}
