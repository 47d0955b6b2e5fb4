//go:build linux

package vmguest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadModulesOrderFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadModules(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no order file: %v", err)
	}
	// Comments and blank lines are skipped; a missing module stops the
	// load and is named.
	order := "# deps first\n\nmissing.ko n_devs=1\nnever.ko\n"
	if err := os.WriteFile(filepath.Join(dir, "order"), []byte(order), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadModules(dir)
	if len(loaded) != 0 || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.ko") {
		t.Errorf("loaded %v, err %v", loaded, err)
	}
}

func TestWaitFor(t *testing.T) {
	if err := WaitFor(t.TempDir(), time.Second); err != nil {
		t.Error(err)
	}
	if err := WaitFor(filepath.Join(t.TempDir(), "video0"), 0); err == nil {
		t.Error("missing path reported present")
	}
}
