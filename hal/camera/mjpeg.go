package camera

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
)

// MJPEGError reports an MJPEG frame that does not decode or is not the
// negotiated size.
type MJPEGError struct {
	W, H int
	Err  error
}

func (e *MJPEGError) Error() string {
	return fmt.Sprintf("MJPG frame %dx%d: %v", e.W, e.H, e.Err)
}

func (e *MJPEGError) Unwrap() error { return e.Err }

// decodeMJPEG decodes one JPEG frame (baseline, as UVC cameras send it)
// with the standard library's pure-Go decoder and converts its YCbCr
// planes to RGBA (JFIF full range) in fixed point. A frame that is not a
// JPEG, is truncated, or has another size is an error, never a panic.
func decodeMJPEG(dst *image.RGBA, src []byte, w, h int) (*image.RGBA, error) {
	if len(src) < 4 || src[0] != 0xFF || src[1] != 0xD8 {
		return dst, &MJPEGError{W: w, H: h, Err: fmt.Errorf("no JPEG start-of-image marker (%d bytes)", len(src))}
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(src))
	if err != nil {
		return dst, &MJPEGError{W: w, H: h, Err: err}
	}
	if cfg.Width != w || cfg.Height != h {
		return dst, &MJPEGError{W: w, H: h, Err: fmt.Errorf("the JPEG is %dx%d", cfg.Width, cfg.Height)}
	}
	img, err := jpeg.Decode(bytes.NewReader(src))
	if err != nil {
		return dst, &MJPEGError{W: w, H: h, Err: err}
	}
	if dst == nil || dst.Bounds() != image.Rect(0, 0, w, h) {
		dst = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	switch m := img.(type) {
	case *image.YCbCr:
		ycbcrToRGBA(dst, m)
	case *image.Gray:
		for y := range h {
			in := m.Pix[y*m.Stride:][:w]
			out := dst.Pix[y*dst.Stride:][:w*4]
			for x, v := range in {
				out[x*4], out[x*4+1], out[x*4+2], out[x*4+3] = v, v, v, 255
			}
		}
	default:
		return dst, &MJPEGError{W: w, H: h, Err: fmt.Errorf("unsupported JPEG colour model %T", img)}
	}
	return dst, nil
}

// ycbcrToRGBA converts JFIF (full-range BT.601) YCbCr to RGBA in 16.16
// fixed point, for the 4:4:4, 4:2:2, 4:2:0 and 4:4:0 layouts.
func ycbcrToRGBA(dst *image.RGBA, m *image.YCbCr) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	sx, sy := 1, 1 // chroma subsampling shifts
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
		sx, sy = 0, 0
	case image.YCbCrSubsampleRatio422:
		sx, sy = 1, 0
	case image.YCbCrSubsampleRatio440:
		sx, sy = 0, 1
	case image.YCbCrSubsampleRatio420:
	default:
		// 4:1:1, 4:1:0: the library's own per-pixel conversion.
		for y := range h {
			for x := range w {
				r, g, b, _ := m.At(m.Rect.Min.X+x, m.Rect.Min.Y+y).RGBA()
				o := y*dst.Stride + x*4
				dst.Pix[o], dst.Pix[o+1], dst.Pix[o+2], dst.Pix[o+3] = uint8(r>>8), uint8(g>>8), uint8(b>>8), 255
			}
		}
		return
	}
	for y := range h {
		yr := m.Y[y*m.YStride:][:w]
		cb := m.Cb[(y>>sy)*m.CStride:]
		cr := m.Cr[(y>>sy)*m.CStride:]
		out := dst.Pix[y*dst.Stride:][:w*4]
		for x := range yr {
			yy := int32(yr[x])<<16 + 1<<15
			ci := x >> sx
			d := int32(cb[ci]) - 128
			e := int32(cr[ci]) - 128
			r := (yy + 91881*e) >> 16
			g := (yy - 22554*d - 46802*e) >> 16
			b := (yy + 116130*d) >> 16
			o := x * 4
			out[o] = clamp8(r)
			out[o+1] = clamp8(g)
			out[o+2] = clamp8(b)
			out[o+3] = 255
		}
	}
}
