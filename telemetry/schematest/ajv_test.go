package schematest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ajvSamples collects payloads the Go validator accepted, by the schema
// file that accepted them, to run them through ajv too: validators
// disagree (../shared/notes/pitfalls.md), and the fleet's JavaScript
// tooling uses ajv.
type ajvSamples struct {
	mu    sync.Mutex
	files map[string][][]byte // schema file (relative to docs/) -> payloads
}

func (a *ajvSamples) add(file string, payload []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.files == nil {
		a.files = map[string][][]byte{}
	}
	a.files[file] = append(a.files[file], bytes.Clone(payload))
}

// acceptedBy is validate that also names the schema file that accepted
// the payload.
func (c *channel) acceptedBy(payload []byte) (string, error) {
	if err := c.validate(payload); err != nil {
		return "", err
	}
	if len(c.files) == 1 {
		for _, f := range c.files {
			return f, nil
		}
	}
	for name, f := range c.files {
		ch := &channel{name: c.name, address: c.address, schemas: map[string]*jsonschema.Schema{name: c.schemas[name]}, files: map[string]string{name: f}}
		if ch.validate(payload) == nil {
			return f, nil
		}
	}
	return "", errors.New("no single schema accepted it")
}

// ajvBinary installs ajv-cli through scripts/ajv.sh (npm) and returns it;
// the test skips when npm is missing or the install fails (offline).
func ajvBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("ajv cross-check skipped in -short")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		if _, err := exec.LookPath("node"); err != nil {
			t.Skip("npm/node not installed: ajv cross-check skipped")
		}
	}
	script, err := filepath.Abs("../../scripts/ajv.sh")
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("ajv not available (%v): %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// check runs every collected payload through ajv (draft 2020-12, formats
// asserted), against the schema file that accepted it in Go, with every
// other schema file as a reference resolved by its $id.
func (a *ajvSamples) check(t *testing.T) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.files) == 0 {
		t.Fatal("no payloads collected for ajv")
	}
	ajv := ajvBinary(t)
	schemaDir, err := filepath.Abs(filepath.Join(filepath.Dir(docPath), "schemas"))
	if err != nil {
		t.Fatal(err)
	}
	all, _ := filepath.Glob(filepath.Join(schemaDir, "*.json"))
	dir := t.TempDir()
	for _, file := range slices.Sorted(func(yield func(string) bool) {
		for f := range a.files {
			if !yield(f) {
				return
			}
		}
	}) {
		schema := filepath.Join(filepath.Dir(docPath), file)
		schema, _ = filepath.Abs(schema)
		args := []string{"validate", "--spec=draft2020", "--strict=false", "-c", "ajv-formats", "-s", schema}
		for _, f := range all {
			if f != schema {
				args = append(args, "-r", f)
			}
		}
		base := strings.TrimSuffix(filepath.Base(file), ".json")
		for i, p := range a.files[file] {
			d := filepath.Join(dir, fmt.Sprintf("%s-%03d.json", base, i))
			if err := os.WriteFile(d, p, 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "-d", d)
		}
		out, err := exec.Command(ajv, args...).CombinedOutput()
		if err != nil {
			t.Errorf("ajv refuses payloads the Go validator accepts (%s, %d payloads): %v\n%s", file, len(a.files[file]), err, out)
			for i, p := range a.files[file] {
				t.Logf("%s-%03d: %s", base, i, p)
			}
		} else {
			t.Logf("ajv: %d payloads valid against %s", len(a.files[file]), file)
		}
	}
}
