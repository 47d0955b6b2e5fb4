package slide

import (
	"strings"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/datamatrix"
	"github.com/makiuchi-d/gozxing/datamatrix/encoder"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// LabelCode is the symbology printed on a slide's label next to the
// human-readable ID.
type LabelCode uint8

// Label symbologies.
const (
	LabelCode128    LabelCode = iota // a Code 128 (set B) linear barcode
	LabelDataMatrix                  // an ECC 200 Data Matrix
	LabelQR                          // a QR code
	// LabelDamaged is a Code 128 label smeared across its middle, as by a
	// wet glove or a solvent: the text shows but no reader can decode it.
	LabelDamaged
)

// String implements fmt.Stringer.
func (c LabelCode) String() string {
	switch c {
	case LabelCode128:
		return "code128"
	case LabelDataMatrix:
		return "datamatrix"
	case LabelQR:
		return "qr"
	case LabelDamaged:
		return "damaged"
	}
	return "LabelCode(?)"
}

// labelRaster is the printed label: grey levels over x in [0, LabelWidthUM),
// y in [0, HeightUM), umPerPx µm per pixel.
type labelRaster struct {
	pix     []uint8
	w, h    int
	umPerPx float64
}

// Label layout, µm.
const (
	labelUMPerPx   = 25.0
	barcodeModule  = 100.0 // narrowest bar
	barcodeHeight  = 8000.0
	labelMargin    = 1000.0
	labelTextTop   = 2000.0
	labelBarTop    = 9000.0
	labelPaper     = 248
	labelInk       = 20
	glyphW, glyphH = 5, 7
)

func (s *Slide) labelRaster() *labelRaster {
	s.labelOnce.Do(func() { s.label = drawLabelRaster(s.Spec.ID, s.Spec.Label) })
	return s.label
}

func drawLabelRaster(id string, code LabelCode) *labelRaster {
	l := &labelRaster{umPerPx: labelUMPerPx, w: int(LabelWidthUM / labelUMPerPx), h: int(HeightUM / labelUMPerPx)}
	l.pix = make([]uint8, l.w*l.h)
	for i := range l.pix {
		l.pix[i] = labelPaper
	}
	usable := LabelWidthUM - 2*labelMargin
	// The ID in a 5x7 bitmap font, as large as fits (at most 2.5 mm high).
	text := strings.ToUpper(id)
	if text != "" {
		cell := usable / float64(len(text)*(glyphW+1)) // µm per font dot
		cell = min(cell, 2500.0/glyphH)
		x := labelMargin + (usable-cell*float64(len(text)*(glyphW+1)-1))/2
		for _, ch := range text {
			g := glyph(ch)
			for row := range glyphH {
				for col := range glyphW {
					if g[row]&(1<<(glyphW-1-col)) != 0 {
						l.fill(x+float64(col)*cell, labelTextTop+float64(row)*cell, cell, cell, labelInk)
					}
				}
			}
			x += cell * (glyphW + 1)
		}
	}
	if code == LabelDataMatrix || code == LabelQR {
		l.drawMatrix(id, code, usable)
		return l
	}
	// Code 128 (set B) barcode of the ID, with quiet zones of 10 modules.
	if widths := code128B(id); len(widths) > 0 {
		total := 20
		for _, m := range widths {
			total += m
		}
		module := min(barcodeModule, usable/float64(total))
		x := labelMargin + (usable-module*float64(total))/2 + 10*module
		for k, m := range widths {
			if k%2 == 0 { // bars at even positions, spaces at odd
				l.fill(x, labelBarTop, module*float64(m), barcodeHeight, labelInk)
			}
			x += module * float64(m)
		}
		if code == LabelDamaged {
			// A smear across the middle third of the bars.
			mid := labelMargin + usable/2
			l.fill(mid-usable/6, labelBarTop-500, usable/3, barcodeHeight+1000, 150)
		}
	}
	return l
}

// matrixModule is the module size of a 2-D symbol, µm.
const matrixModule = 350.0

// drawMatrix prints id as a Data Matrix or QR symbol centred under the
// text, with a quiet zone of paper around it.
func (l *labelRaster) drawMatrix(id string, code LabelCode, usable float64) {
	if id == "" {
		return
	}
	var bm *gozxing.BitMatrix
	var err error
	if code == LabelDataMatrix {
		// Square symbols, as slide printers use.
		bm, err = datamatrix.NewDataMatrixWriter().Encode(id, gozxing.BarcodeFormat_DATA_MATRIX, 0, 0,
			map[gozxing.EncodeHintType]interface{}{gozxing.EncodeHintType_DATA_MATRIX_SHAPE: encoder.SymbolShapeHint_FORCE_SQUARE})
	} else {
		bm, err = qrcode.NewQRCodeWriter().Encode(id, gozxing.BarcodeFormat_QR_CODE, 0, 0,
			map[gozxing.EncodeHintType]interface{}{gozxing.EncodeHintType_MARGIN: 0})
	}
	if err != nil {
		return // too long for a symbol: the label shows the text only
	}
	w, h := bm.GetWidth(), bm.GetHeight()
	module := min(matrixModule, usable/float64(w+4), (HeightUM-labelBarTop-500)/float64(h+4))
	x0 := labelMargin + (usable-module*float64(w))/2
	for j := range h {
		for i := range w {
			if bm.Get(i, j) {
				l.fill(x0+float64(i)*module, labelBarTop+float64(j)*module, module, module, labelInk)
			}
		}
	}
}

// fill paints the rectangle (µm) with grey level g.
func (l *labelRaster) fill(x, y, w, h float64, g uint8) {
	i0, i1 := max(0, int(x/l.umPerPx+0.5)), min(l.w, int((x+w)/l.umPerPx+0.5))
	j0, j1 := max(0, int(y/l.umPerPx+0.5)), min(l.h, int((y+h)/l.umPerPx+0.5))
	for j := j0; j < j1; j++ {
		for i := i0; i < i1; i++ {
			l.pix[j*l.w+i] = g
		}
	}
}

// code128B returns the bar and space widths (in modules, starting with a
// bar) of text encoded in Code 128 code set B: start B, the characters, the
// mod-103 check symbol and stop (with its final bar). Characters outside
// ASCII 32..126 are replaced by '?'. It returns nil for empty text.
func code128B(text string) []int {
	if text == "" {
		return nil
	}
	patterns := code128Patterns()
	const startB, stop = 104, 106
	vals := []int{startB}
	sum := startB
	for i, ch := range []byte(text) {
		if ch < 32 || ch > 126 {
			ch = '?'
		}
		v := int(ch) - 32
		vals = append(vals, v)
		sum += (i + 1) * v
	}
	vals = append(vals, sum%103, stop)
	var out []int
	for _, v := range vals {
		for _, d := range patterns[v] {
			out = append(out, int(d-'0'))
		}
	}
	return out
}

// code128Patterns are the bar/space widths of Code 128 symbols 0..106
// (ISO/IEC 15417); the stop symbol includes its 2-module final bar.
func code128Patterns() [107]string {
	return [107]string{
		"212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212", "221213",
		"221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221", "223211", "221132",
		"221231", "213212", "223112", "312131", "311222", "321122", "321221", "312212", "322112", "322211",
		"212123", "212321", "232121", "111323", "131123", "131321", "112313", "132113", "132311", "211313",
		"231113", "231311", "112133", "112331", "132131", "113123", "113321", "133121", "313121", "211331",
		"231131", "213113", "213311", "213131", "311123", "311321", "331121", "312113", "312311", "332111",
		"314111", "221411", "431111", "111224", "111422", "121124", "121421", "141122", "141221", "112214",
		"112412", "122114", "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111",
		"111242", "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
		"214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311", "113141",
		"114131", "311141", "411131", "211412", "211214", "211232", "2331112",
	}
}

// glyph returns the 5x7 bitmap of an upper-case character: one byte per
// row, bit 4 is the leftmost column. Unknown characters draw as a box.
func glyph(ch rune) [glyphH]uint8 {
	switch ch {
	case ' ':
		return [7]uint8{}
	case '0':
		return [7]uint8{0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}
	case '1':
		return [7]uint8{0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}
	case '2':
		return [7]uint8{0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}
	case '3':
		return [7]uint8{0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}
	case '4':
		return [7]uint8{0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}
	case '5':
		return [7]uint8{0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}
	case '6':
		return [7]uint8{0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}
	case '7':
		return [7]uint8{0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}
	case '8':
		return [7]uint8{0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}
	case '9':
		return [7]uint8{0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}
	case 'A':
		return [7]uint8{0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}
	case 'B':
		return [7]uint8{0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}
	case 'C':
		return [7]uint8{0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}
	case 'D':
		return [7]uint8{0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}
	case 'E':
		return [7]uint8{0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}
	case 'F':
		return [7]uint8{0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}
	case 'G':
		return [7]uint8{0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}
	case 'H':
		return [7]uint8{0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}
	case 'I':
		return [7]uint8{0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}
	case 'J':
		return [7]uint8{0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}
	case 'K':
		return [7]uint8{0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}
	case 'L':
		return [7]uint8{0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}
	case 'M':
		return [7]uint8{0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}
	case 'N':
		return [7]uint8{0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}
	case 'O':
		return [7]uint8{0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}
	case 'P':
		return [7]uint8{0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}
	case 'Q':
		return [7]uint8{0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}
	case 'R':
		return [7]uint8{0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}
	case 'S':
		return [7]uint8{0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}
	case 'T':
		return [7]uint8{0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}
	case 'U':
		return [7]uint8{0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}
	case 'V':
		return [7]uint8{0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}
	case 'W':
		return [7]uint8{0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}
	case 'X':
		return [7]uint8{0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}
	case 'Y':
		return [7]uint8{0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}
	case 'Z':
		return [7]uint8{0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}
	case '-':
		return [7]uint8{0, 0, 0, 0x1F, 0, 0, 0}
	case '_':
		return [7]uint8{0, 0, 0, 0, 0, 0, 0x1F}
	case '.':
		return [7]uint8{0, 0, 0, 0, 0, 0x0C, 0x0C}
	case ':':
		return [7]uint8{0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}
	case '/':
		return [7]uint8{0, 0x01, 0x02, 0x04, 0x08, 0x10, 0}
	case '#':
		return [7]uint8{0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}
	}
	return [7]uint8{0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F}
}
