package scan

import (
	"image"
	"image/color"
	"image/draw"
	"math"
	"sync"
)

// overview is a downscaled mosaic of the scanned tiles.
type overview struct {
	mu       sync.Mutex
	img      *image.RGBA
	x0, y0   float64 // stage µm at the mosaic's top-left pixel
	umPerPix float64
	factor   int
}

func newOverview(p TilePlan, pixelUM float64) *overview {
	wUM := float64(p.Cols-1)*p.StepX + p.FieldW
	hUM := float64(p.Rows-1)*p.StepY + p.FieldH
	f := int(math.Ceil(math.Max(wUM, hUM) / pixelUM / 1600))
	if f < 1 {
		f = 1
	}
	o := &overview{factor: f, umPerPix: pixelUM * float64(f)}
	if len(p.Tiles) > 0 {
		minX, minY := math.Inf(1), math.Inf(1)
		for _, t := range p.Tiles {
			minX, minY = math.Min(minX, t.X), math.Min(minY, t.Y)
		}
		// Grid origin: the top-left corner of the grid's first column/row.
		o.x0 = minX - p.FieldW/2
		o.y0 = minY - p.FieldH/2
	}
	w := int(wUM/o.umPerPix) + 1
	h := int(hUM/o.umPerPix) + 1
	o.img = image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(o.img, o.img.Bounds(), image.NewUniform(color.RGBA{40, 40, 40, 255}), image.Point{}, draw.Src)
	return o
}

// paste box-downsamples tile (whose top-left is at stage x, y µm) into the
// mosaic.
func (o *overview) paste(tile *image.RGBA, x, y float64) {
	f := o.factor
	ox := int(math.Round((x - o.x0) / o.umPerPix))
	oy := int(math.Round((y - o.y0) / o.umPerPix))
	tw, th := tile.Rect.Dx()/f, tile.Rect.Dy()/f
	o.mu.Lock()
	defer o.mu.Unlock()
	for j := 0; j < th; j++ {
		dy := oy + j
		if dy < 0 || dy >= o.img.Rect.Dy() {
			continue
		}
		for i := 0; i < tw; i++ {
			dx := ox + i
			if dx < 0 || dx >= o.img.Rect.Dx() {
				continue
			}
			var sr, sg, sb int
			for yy := 0; yy < f; yy++ {
				p := tile.Pix[(j*f+yy)*tile.Stride+i*f*4:]
				for xx := 0; xx < f; xx++ {
					sr += int(p[xx*4])
					sg += int(p[xx*4+1])
					sb += int(p[xx*4+2])
				}
			}
			n := f * f
			d := o.img.Pix[dy*o.img.Stride+dx*4:]
			d[0], d[1], d[2], d[3] = uint8(sr/n), uint8(sg/n), uint8(sb/n), 255
		}
	}
}

// Mosaic is a downscaled image of a slide's scanned tiles, placed on the
// stage: the data the overview image is drawn from (package render).
type Mosaic struct {
	Image *image.RGBA
	// OriginX and OriginY are the stage position (µm) of the top-left
	// corner of the image's first pixel.
	OriginX, OriginY float64
	// UMPerPixel is the mosaic's scale, µm per pixel.
	UMPerPixel float64
}

// Mosaic returns a copy of the mosaic of the tiles scanned so far, or
// false when no tile was scanned.
func (r *Report) Mosaic() (Mosaic, bool) {
	o := r.overview
	if o == nil {
		return Mosaic{}, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	img := image.NewRGBA(o.img.Rect)
	copy(img.Pix, o.img.Pix)
	return Mosaic{Image: img, OriginX: o.x0, OriginY: o.y0, UMPerPixel: o.umPerPix}, true
}

// ImageScale returns the scale of the images a report carries: the
// gallery crops' (the camera's pixel size, µm per pixel), the overview's
// (µm per pixel) and the stage position of the overview's top-left pixel
// (µm); ok is false when no tile was scanned.
func (r *Report) ImageScale() (cropUM, overviewUM, originX, originY float64, ok bool) {
	o := r.overview
	if o == nil {
		return 0, 0, 0, 0, false
	}
	return o.umPerPix / float64(o.factor), o.umPerPix, o.x0, o.y0, true
}
