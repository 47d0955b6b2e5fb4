package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"papscan/telemetry"
)

// Where StoreImages keeps a result's images, relative to its result
// directory <stateDir>/slides/<slide>/<result_id>: one PNG per image
// (images/<image_id>.png) and a manifest (images.json) with each image's
// message, its PNG left out.
const (
	imagesDir      = "images"
	imagesManifest = "images.json"
	maxManifest    = 1 << 20
)

// StoreImages keeps a result's image messages beside its result.json
// (see the constants above) so that Rederive can commit them again after
// the outbox was damaged. The messages must all belong to one result;
// every file is written to a temporary name, synced and renamed through
// an os.Root on stateDir, the manifest last. The caller stores them
// before the result.json (so a result.json found means its images are
// there too).
func StoreImages(stateDir string, msgs []telemetry.ImageMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	slide, result := msgs[0].SlideID, msgs[0].ResultID
	if err := telemetry.ValidateSlideID(slide); err != nil || !idRe.MatchString(result) {
		return fmt.Errorf("outbox: store images: bad slide or result ID %q/%q", slide, result)
	}
	root, err := os.OpenRoot(stateDir)
	if err != nil {
		return fmt.Errorf("outbox: store images: %w", err)
	}
	defer root.Close()
	dir := path.Join("slides", slide, result)
	if err := root.MkdirAll(path.Join(dir, imagesDir), 0o750); err != nil {
		return fmt.Errorf("outbox: store images: %w", err)
	}
	manifest := make([]telemetry.ImageMessage, 0, len(msgs))
	for _, m := range msgs {
		if m.SlideID != slide || m.ResultID != result {
			return fmt.Errorf("outbox: store images: image %q belongs to %q/%q, not %q/%q", m.ImageID, m.SlideID, m.ResultID, slide, result)
		}
		if err := m.Validate(); err != nil {
			return fmt.Errorf("outbox: store images: %w", err)
		}
		if !idRe.MatchString(m.ImageID) {
			return fmt.Errorf("outbox: store images: bad image_id %q", m.ImageID)
		}
		if err := writeAtomic(root, path.Join(dir, imagesDir, m.ImageID+".png"), m.Body.PNG); err != nil {
			return err
		}
		m.Body.PNG = nil
		manifest = append(manifest, m)
	}
	b, err := json.Marshal(manifest)
	if err != nil {
		return fmt.Errorf("outbox: store images: %w", err)
	}
	return writeAtomic(root, path.Join(dir, imagesManifest), b)
}

func writeAtomic(root *os.Root, name string, b []byte) error {
	tmp := name + ".tmp"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("outbox: store images: %w", err)
	}
	defer root.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("outbox: store images: %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("outbox: store images: %s: sync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("outbox: store images: %s: %w", name, err)
	}
	if err := root.Rename(tmp, name); err != nil {
		return fmt.Errorf("outbox: store images: %w", err)
	}
	return nil
}

// rederiveImages commits again the images StoreImages kept in the result
// directory dir (relative to slides) of slideID/resultID. It returns how
// many were committed anew. An image the disk has no room for (ErrFull)
// ends the loop without an error: the files stay, as after Deliver.
func (o *Outbox) rederiveImages(slides *os.Root, dir, slideID, resultID string) (int, error) {
	mp := path.Join(dir, imagesManifest)
	st, err := slides.Lstat(mp)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // a result without images
	}
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxManifest {
		return 0, fmt.Errorf("%s: not a regular file of at most %d bytes", mp, maxManifest)
	}
	b, err := slides.ReadFile(mp)
	if err != nil {
		return 0, err
	}
	var msgs []telemetry.ImageMessage
	if err := json.Unmarshal(b, &msgs); err != nil {
		return 0, fmt.Errorf("%s: %w", mp, err)
	}
	var bad []error
	n := 0
	for _, m := range msgs {
		if m.SlideID != slideID || m.ResultID != resultID || !idRe.MatchString(m.ImageID) {
			bad = append(bad, fmt.Errorf("%s: image %q names %q/%q", mp, m.ImageID, m.SlideID, m.ResultID))
			continue
		}
		pp := path.Join(dir, imagesDir, m.ImageID+".png")
		pst, err := slides.Lstat(pp)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		if !pst.Mode().IsRegular() || pst.Size() > telemetry.MaxImagePNGBytes {
			bad = append(bad, fmt.Errorf("%s: not a regular file of at most %d bytes", pp, telemetry.MaxImagePNGBytes))
			continue
		}
		if m.Body.PNG, err = slides.ReadFile(pp); err != nil {
			bad = append(bad, err)
			continue
		}
		held := o.holds(m.ImageID)
		if _, err := o.PutImage(m); err != nil {
			if errors.Is(err, ErrFull) {
				break
			}
			bad = append(bad, fmt.Errorf("%s: %w", pp, err))
			if errors.Is(err, ErrStorage) {
				break
			}
			continue
		}
		if !held {
			n++
		}
	}
	return n, errors.Join(bad...)
}
