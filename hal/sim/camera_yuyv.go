package sim

import "image"

// EncodeYUYV encodes src as packed YUYV 4:2:2 (V4L2_PIX_FMT_YUYV: Y0 U Y1 V
// per pixel pair) with ITU-R BT.601 limited-range coefficients (Y 16..235,
// Cb/Cr 16..240), the usual encoding of V4L2 YUYV cameras. Each pair's
// chroma is taken from the mean of its two pixels. src's width must be even.
// dst is grown if needed and the filled slice (w*h*2 bytes) is returned.
func EncodeYUYV(dst []byte, src *image.RGBA) []byte {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	n := w * h * 2
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	for y := range h {
		in := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):][:w*4]
		out := dst[y*w*2:][:w*2]
		for i, o := 0, 0; i+7 < len(in); i, o = i+8, o+4 {
			r0, g0, b0 := int32(in[i]), int32(in[i+1]), int32(in[i+2])
			r1, g1, b1 := int32(in[i+4]), int32(in[i+5]), int32(in[i+6])
			out[o] = uint8((66*r0+129*g0+25*b0+128)>>8 + 16)
			out[o+2] = uint8((66*r1+129*g1+25*b1+128)>>8 + 16)
			r, g, bb := r0+r1, g0+g1, b0+b1 // twice the mean
			out[o+1] = uint8((-38*r-74*g+112*bb+256)>>9 + 128)
			out[o+3] = uint8((112*r-94*g-18*bb+256)>>9 + 128)
		}
	}
	return dst
}
