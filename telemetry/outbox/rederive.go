package outbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"time"

	bolt "go.etcd.io/bbolt"

	"papscan/telemetry"
)

// maxResultFile bounds a result.json Rederive reads.
const maxResultFile = 16 << 20

// Rederive commits again every slide result stored under
// <stateDir>/slides/<slide>/<result_id>/result.json whose file was
// modified at or after since (zero: all), so that results a damaged
// outbox could not recover still reach the fleet. The body is the file
// as stored (the agent commits the same JSON it writes there); the slide
// and result IDs come from the directory names and must match the
// file's slide_id and result_id. Results the outbox still holds are left
// as they are (PutResult is idempotent); ones the fleet had acked before
// are sent again and dropped by the fleet as duplicates. Files are read
// through an os.Root on the slides directory (no path leaves it, no
// symlink is followed out of it); a file that does not validate is
// skipped and named in the returned error.
//
// Each re-derived result's images follow it: the gallery crops and the
// overview StoreImages kept in its directory (images.json and
// images/<image_id>.png) are committed again with their image IDs, as
// Deliver committed them. It returns how many entries (results and
// images) were committed anew.
func (o *Outbox) Rederive(stateDir string, since time.Time) (int, error) {
	root, err := os.OpenRoot(stateDir)
	if err != nil {
		return 0, fmt.Errorf("outbox: rederive: %w", err)
	}
	defer root.Close()
	slides, err := root.OpenRoot("slides")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("outbox: rederive: %w", err)
	}
	defer slides.Close()
	fsys := slides.FS()
	var skipped []error
	n := 0
	slideDirs, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return 0, fmt.Errorf("outbox: rederive: %w", err)
	}
	for _, sd := range slideDirs {
		if !sd.IsDir() {
			continue
		}
		results, err := fs.ReadDir(fsys, sd.Name())
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		for _, rd := range results {
			if !rd.IsDir() {
				continue
			}
			p := path.Join(sd.Name(), rd.Name(), "result.json")
			added, err := o.rederiveOne(slides, p, sd.Name(), rd.Name(), since)
			if err != nil {
				skipped = append(skipped, fmt.Errorf("%s: %w", p, err))
				continue
			}
			if added < 0 {
				continue // no result.json, or older than since
			}
			n += added
			imgs, err := o.rederiveImages(slides, path.Join(sd.Name(), rd.Name()), sd.Name(), rd.Name())
			n += imgs
			if err != nil {
				skipped = append(skipped, fmt.Errorf("images of %s: %w", p, err))
			}
		}
	}
	if len(skipped) > 0 {
		return n, fmt.Errorf("outbox: rederive: %d result or image files skipped: %w", len(skipped), errors.Join(skipped...))
	}
	return n, nil
}

// rederiveOne commits the result file p again: 1 when it was not held,
// 0 when it was, -1 when there is nothing to commit (no file, or older
// than since).
func (o *Outbox) rederiveOne(slides *os.Root, p, slideID, resultID string, since time.Time) (int, error) {
	st, err := slides.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil // a result directory without its result.json (e.g. images only)
	}
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, errors.New("not a regular file")
	}
	if st.ModTime().Before(since) {
		return -1, nil
	}
	if st.Size() > maxResultFile {
		return 0, fmt.Errorf("%d bytes, more than %d", st.Size(), maxResultFile)
	}
	b, err := slides.ReadFile(p)
	if err != nil {
		return 0, err
	}
	var head struct {
		SlideID  string `json:"slide_id"`
		ResultID string `json:"result_id"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return 0, err
	}
	if head.SlideID != slideID || head.ResultID != resultID {
		return 0, fmt.Errorf("file names slide %q result %q, its directory %q/%q", head.SlideID, head.ResultID, slideID, resultID)
	}
	if err := telemetry.ValidateSlideID(slideID); err != nil || !idRe.MatchString(resultID) {
		return 0, fmt.Errorf("bad slide or result ID %q/%q", slideID, resultID)
	}
	var body bytes.Buffer
	if err := json.Compact(&body, b); err != nil {
		return 0, err
	}
	held := o.holds(resultID)
	if _, err := o.PutResult(slideID, resultID, body.Bytes()); err != nil {
		return 0, err
	}
	if held {
		return 0, nil
	}
	return 1, nil
}

// holds reports whether an entry with this ID is in the outbox.
func (o *Outbox) holds(id string) bool {
	found := false
	_ = o.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketIDs).Get([]byte(id)) != nil
		return nil
	})
	return found
}
