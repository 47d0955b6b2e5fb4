package command

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ReadStored implements Agent.Fetch for files under the state directory:
// it opens a.RelPath() through root (os.OpenRoot(stateDir)), so neither
// ".." nor a symbolic link can lead outside the state directory, refuses
// anything but a regular file, and reads at most maxBytes. Errors wrap
// ErrNotFound (no such file), ErrBadArgs (not a regular file) or
// ErrTooLarge.
func ReadStored(root *os.Root, a FetchArgs, maxBytes int) (FetchResult, error) {
	if err := a.Validate(); err != nil {
		return FetchResult{}, fmt.Errorf("%w: %w", ErrBadArgs, err)
	}
	rel := a.RelPath()
	f, err := root.Open(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return FetchResult{}, fmt.Errorf("%s: %w", rel, ErrNotFound)
	}
	if err != nil {
		return FetchResult{}, fmt.Errorf("%s: %w", rel, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return FetchResult{}, fmt.Errorf("%s: %w", rel, err)
	}
	if !st.Mode().IsRegular() {
		return FetchResult{}, fmt.Errorf("%s is not a regular file: %w", rel, ErrBadArgs)
	}
	if st.Size() > int64(maxBytes) {
		return FetchResult{}, fmt.Errorf("%s is %d bytes, more than the limit %d: %w", rel, st.Size(), maxBytes, ErrTooLarge)
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(maxBytes)+1))
	if err != nil {
		return FetchResult{}, fmt.Errorf("%s: %w", rel, err)
	}
	if len(data) > maxBytes {
		return FetchResult{}, fmt.Errorf("%s grew past the limit %d: %w", rel, maxBytes, ErrTooLarge)
	}
	sum := sha256.Sum256(data)
	return FetchResult{Item: a.Item, Path: rel, ContentType: a.ContentType(), Size: len(data),
		SHA256: hex.EncodeToString(sum[:]), Data: data}, nil
}
