package delivery

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"

	"papscan/render"
	"papscan/scan"
	"papscan/telemetry"
	"papscan/telemetry/outbox"
)

// imageID is the stable ID (and fleet ack key) of a result's index-th
// image: a retried Deliver commits the same IDs, so nothing is doubled.
func imageID(resultID string, index int) string {
	return fmt.Sprintf("%s.img%02d", resultID, index)
}

// reportImages builds the image messages of r: each gallery crop at the
// camera's full resolution (most suspicious first, with its score, class
// and stage position), then the overview with the hits, reduced by
// halving until its PNG fits telemetry.MaxImagePNGBytes and
// telemetry.MaxImageSide.
func reportImages(robot string, r *scan.Report) ([]telemetry.ImageMessage, error) {
	cropUM, ovUM, ox, oy, haveScale := r.ImageScale()
	var crops []int
	for i, c := range r.Result.Top {
		if c.Crop != nil && c.Crop.Rect.Dx() <= telemetry.MaxCropSide && c.Crop.Rect.Dy() <= telemetry.MaxCropSide && c.Crop.Rect.Dx() > 0 && c.Crop.Rect.Dy() > 0 {
			crops = append(crops, i)
		}
	}
	var ov image.Image
	if m, ok := r.Mosaic(); haveScale && ok {
		if img := render.Overview(m, r.Result.Top); img != nil {
			ov = img
		}
	}
	of := len(crops)
	if ov != nil {
		of++
	}
	out := make([]telemetry.ImageMessage, 0, of)
	for k, i := range crops {
		c := r.Result.Top[i]
		m, err := telemetry.NewImage(robot, r.SlideID, r.ResultID, telemetry.ImageCrop, k, of, c.Crop, cropUM)
		if err != nil {
			return nil, err
		}
		m.ImageID = imageID(r.ResultID, k)
		m.Body.Score = min(1, max(0, float64(c.Score)))
		m.Body.Class, m.Body.StageXUM, m.Body.StageYUM = c.Class.String(), c.StageX, c.StageY
		if err := m.Validate(); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if ov != nil {
		for ov.Bounds().Dx() > 1 {
			b := ov.Bounds()
			if b.Dx() <= telemetry.MaxImageSide && b.Dy() <= telemetry.MaxImageSide && pngFits(ov) {
				break
			}
			ov, ovUM = halve(ov), ovUM*2
		}
		m, err := telemetry.NewImage(robot, r.SlideID, r.ResultID, telemetry.ImageOverview, len(crops), of, ov, ovUM)
		if err != nil {
			return nil, err
		}
		m.ImageID = imageID(r.ResultID, len(crops))
		m.Body.OriginXUM, m.Body.OriginYUM = ox, oy
		if err := m.Validate(); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// pngFits reports whether img's PNG (as NewImage encodes it) is within
// telemetry.MaxImagePNGBytes.
func pngFits(img image.Image) bool {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	return enc.Encode(&buf, img) == nil && buf.Len() <= telemetry.MaxImagePNGBytes
}

// halve box-downsamples img by 2 in each direction.
func halve(img image.Image) *image.RGBA {
	b := img.Bounds()
	w, h := max(1, b.Dx()/2), max(1, b.Dy()/2)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			var sr, sg, sb, sa uint32
			for _, p := range [4]image.Point{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
				r, g, bl, a := img.At(b.Min.X+min(2*x+p.X, b.Dx()-1), b.Min.Y+min(2*y+p.Y, b.Dy()-1)).RGBA()
				sr, sg, sb, sa = sr+r, sg+g, sb+bl, sa+a
			}
			i := dst.PixOffset(x, y)
			dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = uint8(sr>>10), uint8(sg>>10), uint8(sb>>10), uint8(sa>>10)
		}
	}
	return dst
}

// commitImages commits a result's images (reportImages) to the outbox
// after the result, each a durable entry the sender publishes on
// telemetry.ImageTopic and keeps until the fleet acks its image_id. An
// image the disk has no room for (outbox.ErrFull: the room is kept for
// results) is logged and skipped: the result is already committed and
// the slide's files keep every image (Rederive commits them again after
// outbox damage).
func (d *Delivery) commitImages(msgs []telemetry.ImageMessage) int {
	n := 0
	for _, m := range msgs {
		if _, err := d.Link.ob.PutImage(m); err != nil {
			d.Log.Warn("slide image not committed", "slide", m.SlideID, "image", m.ImageID, "role", m.Body.Role, "err", err)
			if errors.Is(err, outbox.ErrFull) || errors.Is(err, outbox.ErrStorage) {
				break
			}
			continue
		}
		n++
	}
	return n
}
