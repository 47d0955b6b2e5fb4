package camera

import (
	"fmt"
	"image"

	"papscan/hal"
)

// maxSide bounds frame dimensions accepted by Decode, so that w*h*4 cannot
// overflow and a corrupt format cannot make us allocate gigabytes.
const maxSide = 1 << 14

// FrameSizeError reports a raw frame whose length does not match its format.
type FrameSizeError struct {
	FourCC    uint32
	W, H      int
	Want, Got int // bytes
}

func (e *FrameSizeError) Error() string {
	return fmt.Sprintf("%s frame %dx%d: got %d bytes, want %d", hal.FourCC(e.FourCC), e.W, e.H, e.Got, e.Want)
}

// FormatError reports a pixel format the decoder does not support.
type FormatError struct{ FourCC uint32 }

func (e *FormatError) Error() string {
	return fmt.Sprintf("unsupported pixel format %q (0x%08x): want %s, %s or %s",
		hal.FourCC(e.FourCC), e.FourCC, hal.FourCC(hal.PixFmtYUYV), hal.FourCC(hal.PixFmtRGB3), hal.FourCC(hal.PixFmtMJPEG))
}

// FrameBytes is the length of a w x h frame in the given format: 0 for
// MJPEG, whose frames vary in length.
func FrameBytes(fourcc uint32, w, h int) (int, error) {
	if w <= 0 || h <= 0 || w > maxSide || h > maxSide {
		return 0, fmt.Errorf("bad %s frame size %dx%d", hal.FourCC(fourcc), w, h)
	}
	switch fourcc {
	case hal.PixFmtYUYV:
		if w%2 != 0 {
			return 0, fmt.Errorf("YUYV frame width %d is odd", w)
		}
		return w * h * 2, nil
	case hal.PixFmtRGB3:
		return w * h * 3, nil
	case hal.PixFmtMJPEG:
		return 0, nil
	}
	return 0, &FormatError{FourCC: fourcc}
}

// Decode decodes a raw w x h frame in the given V4L2 pixel format into dst,
// which it reallocates when its bounds are not (0,0)-(w,h), and returns it.
func Decode(dst *image.RGBA, src []byte, fourcc uint32, w, h int) (*image.RGBA, error) {
	n, err := FrameBytes(fourcc, w, h)
	if err != nil {
		return dst, err
	}
	if fourcc == hal.PixFmtMJPEG {
		return decodeMJPEG(dst, src, w, h)
	}
	if len(src) != n {
		return dst, &FrameSizeError{FourCC: fourcc, W: w, H: h, Want: n, Got: len(src)}
	}
	if dst == nil || dst.Bounds() != image.Rect(0, 0, w, h) {
		dst = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	switch fourcc {
	case hal.PixFmtYUYV:
		decodeYUYV(dst, src, w, h)
	case hal.PixFmtRGB3:
		decodeRGB3(dst, src, w, h)
	}
	return dst, nil
}

func clamp8(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// decodeYUYV converts BT.601 limited-range YUYV to RGB:
//
//	R = 1.164(Y-16) + 1.596(Cr-128)
//	G = 1.164(Y-16) - 0.392(Cb-128) - 0.813(Cr-128)
//	B = 1.164(Y-16) + 2.017(Cb-128)
//
// in 8.8 fixed point.
func decodeYUYV(dst *image.RGBA, src []byte, w, h int) {
	for y := range h {
		in := src[y*w*2:][:w*2]
		out := dst.Pix[y*dst.Stride:][:w*4]
		for i, o := 0, 0; i+3 < len(in) && o+7 < len(out); i, o = i+4, o+8 {
			c0 := 298 * (int32(in[i]) - 16)
			c1 := 298 * (int32(in[i+2]) - 16)
			d := int32(in[i+1]) - 128
			e := int32(in[i+3]) - 128
			rr := 409*e + 128
			gg := -100*d - 208*e + 128
			bb := 516*d + 128
			out[o] = clamp8((c0 + rr) >> 8)
			out[o+1] = clamp8((c0 + gg) >> 8)
			out[o+2] = clamp8((c0 + bb) >> 8)
			out[o+3] = 255
			out[o+4] = clamp8((c1 + rr) >> 8)
			out[o+5] = clamp8((c1 + gg) >> 8)
			out[o+6] = clamp8((c1 + bb) >> 8)
			out[o+7] = 255
		}
	}
}

func decodeRGB3(dst *image.RGBA, src []byte, w, h int) {
	for y := range h {
		in := src[y*w*3:][:w*3]
		out := dst.Pix[y*dst.Stride:][:w*4]
		for i, o := 0, 0; i+2 < len(in) && o+3 < len(out); i, o = i+3, o+4 {
			out[o], out[o+1], out[o+2], out[o+3] = in[i], in[i+1], in[i+2], 255
		}
	}
}
