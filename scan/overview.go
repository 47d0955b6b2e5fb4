package scan

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"regexp"

	"papscan/scan/label"
)

// Label is what was read from a slide's label.
type Label struct {
	Read   bool   `json:"read"`
	Text   string `json:"text,omitempty"`
	Format string `json:"format,omitempty"` // code128, datamatrix, qr
	// Reason says why the label was not read.
	Reason string `json:"reason,omitempty"`
}

// Report flags.
const (
	FlagLabelUnreadable = "label_unreadable" // the slide is named UNREADABLE-<magazine>-S<slot>
	FlagLabelNotRead    = "label_not_read"   // no overview camera: named <magazine>-S<slot>
	FlagSpotNominal     = "spot_nominal"     // the spot was not found; the nominal one was scanned
	FlagInterrupted     = "interrupted"      // the scan was cut short by a restart
	FlagSelfTestFailed  = "selftest_failed"  // the magazine's self-test failed: rerun
)

// validSlideID is what a label may name a slide: it becomes a directory
// and an MQTT topic level.
var validSlideID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// UnreadableID is the name of a slide whose label could not be read.
func UnreadableID(magazine string, slot int) string {
	return "UNREADABLE-" + SlideID(magazine, slot)
}

// overview takes the overview image, reads the label (renaming the slide
// after it, or flagging it unreadable) and finds the cell spot. Without an
// overview camera it names the slide by magazine and slot, flags the label
// as not read and reports no spot (haveSpot false).
func (s *Scanner) overview(ctx context.Context, r *Report) (spot Spot, haveSpot bool, err error) {
	cam := s.m.Overview
	if cam == nil {
		r.Label = Label{Reason: "no overview camera"}
		r.flag(FlagLabelNotRead)
		return Spot{}, false, nil
	}
	img, err := cam.Capture(ctx, nil)
	r.Frames++
	if err != nil {
		return Spot{}, false, fmt.Errorf("overview camera: %w", err)
	}
	px := um(cam.PixelSize())
	w, h := img.Rect.Dx(), img.Rect.Dy()
	// Stage position of a pixel's centre and back.
	toStage := func(i, j float64) Point {
		return Point{s.o.Overview.CenterX + (i+0.5-float64(w)/2)*px, s.o.Overview.CenterY + (j+0.5-float64(h)/2)*px}
	}
	toPix := func(p Point) (float64, float64) {
		return (p.X-s.o.Overview.CenterX)/px + float64(w)/2 - 0.5, (p.Y-s.o.Overview.CenterY)/px + float64(h)/2 - 0.5
	}

	// The label: everything left of the spot (with 2 mm to spare).
	nom := s.o.SpotCenter
	lx, _ := toPix(Point{nom.X - s.o.SpotDiameter/2 - 2000, nom.Y})
	crop := image.Rect(0, 0, int(math.Max(0, math.Min(lx, float64(w)))), h).Add(img.Rect.Min)
	// Read the label where its paper is (brighter than glass and holder):
	// the tight crop keeps the holder's edges from confusing the 2-D
	// symbol detectors; the whole part left of the spot is the fallback.
	res, lerr := label.Read(img.SubImage(paperBox(img, crop, int(math.Ceil(1000/px)))))
	if lerr != nil {
		if res2, err2 := label.Read(img.SubImage(crop)); err2 == nil {
			res, lerr = res2, nil
		}
	}
	magazine := r.Magazine
	switch {
	case lerr == nil && validSlideID.MatchString(res.Text):
		r.Label = Label{Read: true, Text: res.Text, Format: res.Format}
		r.SlideID = res.Text
	case lerr == nil:
		r.Label = Label{Format: res.Format, Reason: fmt.Sprintf("label text %q is not a valid slide ID", res.Text)}
		r.SlideID = UnreadableID(magazine, r.Slot)
		r.flag(FlagLabelUnreadable)
	default:
		reason := lerr.Error()
		if !errors.Is(lerr, label.ErrUnreadable) {
			reason = "label reader: " + reason
		}
		r.Label = Label{Reason: reason}
		r.SlideID = UnreadableID(magazine, r.Slot)
		r.flag(FlagLabelUnreadable)
		s.log.Warn("slide label unreadable", "magazine", magazine, "slot", r.Slot, "reason", reason)
	}

	// The spot: blocks of about 0.5 mm around the nominal spot that are
	// mostly (faintly) darker than the clean glass around them.
	reach := s.o.SpotDiameter/2 + 3000
	i0, j0 := toPix(Point{nom.X - reach, nom.Y - reach})
	i1, j1 := toPix(Point{nom.X + reach, nom.Y + reach})
	win := image.Rect(int(math.Max(i0, 0)), int(math.Max(j0, 0)), int(math.Min(i1, float64(w))), int(math.Min(j1, float64(h))))
	c, d, ok := spotInOverview(img, win, int(math.Max(2, math.Round(500/px))))
	r.material = newMaterialMap(img, win, px, func(i, j float64) Point { return toStage(i-0.5, j-0.5) })
	if !ok {
		r.flag(FlagSpotNominal)
		s.log.Warn("cell spot not found in the overview; scanning the nominal spot", "slide", r.SlideID)
		return Spot{CenterX: nom.X, CenterY: nom.Y, Diameter: s.o.SpotDiameter, FromOverview: true}, true, nil
	}
	centre := toStage(c.X, c.Y)
	d *= px
	if d < 0.3*s.o.SpotDiameter || d > 1.6*s.o.SpotDiameter {
		r.flag(FlagSpotNominal)
		s.log.Warn("implausible spot in the overview; scanning the nominal spot", "slide", r.SlideID, "diameter_um", d)
		return Spot{CenterX: nom.X, CenterY: nom.Y, Diameter: s.o.SpotDiameter, FromOverview: true}, true, nil
	}
	// The equal-area disc of the blocks mostly covered estimates the spot
	// without bias; a quarter block of margin all round covers its ragged
	// edge (the tiles touching the disc reach beyond it anyway).
	d += 2 * 125
	return Spot{CenterX: centre.X, CenterY: centre.Y, Diameter: d, Found: true, FromOverview: true}, true, nil
}

// spotInOverview finds the specimen in win of the overview: the glass
// level is the window's bright percentile; a pixel is specimen when it is
// at least 2 levels (of 255, green) darker but not as dark as the holder or
// ink; a block of b x b pixels is specimen when most of its pixels are. It
// returns the centroid (pixels) and the diameter of the disc of the same
// area, or false when there is too little.
func spotInOverview(img *image.RGBA, win image.Rectangle, b int) (Point, float64, bool) {
	win = win.Intersect(img.Rect)
	if win.Dx() < 2*b || win.Dy() < 2*b {
		return Point{}, 0, false
	}
	glass := glassLevel(img, win)
	lo := glass * 3 / 4
	var sx, sy float64
	blocks := 0
	for by := win.Min.Y; by+b <= win.Max.Y; by += b {
		for bx := win.Min.X; bx+b <= win.Max.X; bx += b {
			dark := 0
			for y := by; y < by+b; y++ {
				p := img.Pix[img.PixOffset(bx, y):]
				for x := 0; x < b; x++ {
					if g := int(p[x*4+1]); g <= glass-2 && g > lo {
						dark++
					}
				}
			}
			if dark*2 > b*b {
				blocks++
				sx += float64(bx) + float64(b)/2
				sy += float64(by) + float64(b)/2
			}
		}
	}
	if blocks < 4 {
		return Point{}, 0, false
	}
	c := Point{sx/float64(blocks) - 0.5 - float64(img.Rect.Min.X), sy/float64(blocks) - 0.5 - float64(img.Rect.Min.Y)}
	return c, 2 * math.Sqrt(float64(blocks*b*b)/math.Pi), true
}

// paperBox is the bounding box, grown by margin pixels, of the label paper
// in area of img: pixels brighter than the 90th percentile of green, when
// that is brighter than clear glass would be. It returns area when there is
// no such paper.
func paperBox(img *image.RGBA, area image.Rectangle, margin int) image.Rectangle {
	area = area.Intersect(img.Rect)
	var hist [256]int
	n := 0
	for y := area.Min.Y; y < area.Max.Y; y += 2 {
		for x := area.Min.X; x < area.Max.X; x += 2 {
			hist[img.Pix[img.PixOffset(x, y)+1]]++
			n++
		}
	}
	if n == 0 {
		return area
	}
	top, acc := 255, 0
	for v := 255; v >= 0; v-- {
		acc += hist[v]
		if acc*10 >= n {
			top = v
			break
		}
	}
	cut := top - 4
	box := image.Rectangle{}
	for y := area.Min.Y; y < area.Max.Y; y++ {
		for x := area.Min.X; x < area.Max.X; x++ {
			if int(img.Pix[img.PixOffset(x, y)+1]) >= cut {
				box = box.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	if box.Dx() < 4*margin || box.Dy() < 4*margin {
		return area
	}
	return box.Inset(-margin).Intersect(area)
}
