package label

import (
	"errors"
	"fmt"
	"image"
	"strings"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/datamatrix"
	"github.com/makiuchi-d/gozxing/oned"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// ErrUnreadable is returned when no code on the label could be decoded.
var ErrUnreadable = errors.New("label: no readable code")

// Result is a decoded label.
type Result struct {
	Text   string `json:"text"`
	Format string `json:"format"` // code128, datamatrix or qr
}

// reader is one symbology's decoder.
type reader struct {
	format string
	new    func() gozxing.Reader
}

var readers = [...]reader{
	{"code128", oned.NewCode128Reader},
	{"datamatrix", func() gozxing.Reader { return datamatrix.NewDataMatrixReader() }},
	{"qr", qrcode.NewQRCodeReader},
}

// Read decodes the first code found in img, trying Code 128, Data Matrix
// and QR in turn (each with the try-harder search), on the image as given
// and, failing that, inverted (white-on-black print). Every symbology checks
// its own checksum or error correction, so a result is what was printed.
// It returns an error wrapping ErrUnreadable when nothing decodes; the
// error lists what each reader said.
func Read(img image.Image) (Result, error) {
	if img == nil || img.Bounds().Empty() {
		return Result{}, fmt.Errorf("%w: empty image", ErrUnreadable)
	}
	src := gozxing.NewLuminanceSourceFromImage(img)
	var why []string
	for _, inv := range []bool{false, true} {
		s := src
		if inv {
			s = src.Invert()
		}
		for _, r := range readers {
			res, err := decode(r, s)
			if err == nil {
				text := res.GetText()
				if text == "" || strings.ContainsFunc(text, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
					why = append(why, r.format+": control characters or empty text")
					continue
				}
				return Result{Text: text, Format: r.format}, nil
			}
			if !inv {
				why = append(why, r.format+": "+shortErr(err))
			}
		}
	}
	return Result{}, fmt.Errorf("%w (%s)", ErrUnreadable, strings.Join(why, "; "))
}

// decode runs one reader, turning a panic inside the decoder (malformed
// input it did not anticipate) into an error.
func decode(r reader, src gozxing.LuminanceSource) (res *gozxing.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("decoder panic: %v", p)
		}
	}()
	bmp, err := gozxing.NewBinaryBitmap(gozxing.NewHybridBinarizer(src))
	if err != nil {
		return nil, err
	}
	hints := map[gozxing.DecodeHintType]interface{}{gozxing.DecodeHintType_TRY_HARDER: true}
	return r.new().Decode(bmp, hints)
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}
