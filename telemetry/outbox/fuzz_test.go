package outbox_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"papscan/telemetry/outbox"
)

// FuzzDecodeEntry: any stored value decodes to a valid entry or an error,
// never a panic; what decodes re-validates when put back.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(uint64(1), []byte(`{"seq":1,"kind":"result","id":"abc","slide_id":"M1-S00","body":{"v":1},"committed_at":"2026-12-07T00:00:00Z"}`))
	f.Add(uint64(2), []byte(`{"seq":2,"kind":"event","id":"0192aa-1","event":"magazine_done","committed_at":"2026-12-07T00:00:00Z"}`))
	f.Add(uint64(3), []byte(`{"seq":3,"kind":"result","id":"../../x","slide_id":"a/b","body":{},"committed_at":"2026-12-07T00:00:00Z"}`))
	f.Add(uint64(0), []byte(`null`))
	f.Fuzz(func(t *testing.T, seq uint64, v []byte) {
		e, err := outbox.DecodeEntry(seq, v)
		if err != nil {
			return
		}
		if e.Seq != seq || e.ID == "" || e.CommittedAt.IsZero() {
			t.Fatalf("accepted an invalid entry %+v", e)
		}
	})
}

// FuzzOpenFile: whatever bytes outbox.db holds, Open never panics; it
// either fails or returns an outbox that passes Check, with a damage
// report whenever it had to set the file aside.
func FuzzOpenFile(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed.db")
	ob, err := outbox.Open(seed, outbox.Options{MinFreeBytes: -1, Logger: quiet()})
	if err != nil {
		f.Fatal(err)
	}
	_, _ = ob.PutResult("M1-S00", "r1", []byte(`{"verdict":"NILM"}`))
	_, _ = ob.PutEvent("magazine_done", map[string]int{"slides": 1})
	ob.Close()
	good, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add(good[:len(good)/2])
	// fsync on a disk costs ~0.1 s per commit here; tmpfs makes the
	// fuzzer fast (the code path is the same).
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := os.MkdirTemp(base, "outbox-fuzz-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(d)
		path := filepath.Join(d, "outbox.db")
		if err := os.WriteFile(path, b, 0o640); err != nil {
			t.Fatal(err)
		}
		ob, err := outbox.Open(path, outbox.Options{MinFreeBytes: -1, Logger: quiet()})
		if err != nil {
			return
		}
		defer ob.Close()
		if err := ob.Check(); err != nil {
			t.Fatalf("opened outbox fails Check: %v", err)
		}
		if _, err := ob.Pending(0, 1000); err != nil {
			t.Fatalf("opened outbox unreadable: %v", err)
		}
	})
}

// TestRandomDamage flips random bytes of a sound outbox file 500 times
// (seeded, repeatable): Open never crashes, and whatever it opens passes
// Check and reads back; a damaged file is reported, never taken for a
// sound one with fewer entries. (bbolt trusts its file: before the raw
// page walk, a forged element length made it fault outside its mapping
// and kill the process.)
func TestRandomDamage(t *testing.T) {
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	seedDir, err := os.MkdirTemp(base, "outbox-seed-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(seedDir)
	seed := filepath.Join(seedDir, "outbox.db")
	ob, err := outbox.Open(seed, outbox.Options{MinFreeBytes: -1, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if _, err := ob.PutResult(fmt.Sprintf("M1-S%02d", i), fmt.Sprintf("r%02d", i), []byte(`{"verdict":"NILM"}`)); err != nil {
			t.Fatal(err)
		}
	}
	ob.Close()
	good, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	damaged, opened := 0, 0
	for range 500 {
		b := bytes.Clone(good)
		for range 1 + r.IntN(16) {
			b[r.IntN(len(b))] = byte(r.IntN(256))
		}
		d, err := os.MkdirTemp(base, "outbox-dmg-")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(d, "outbox.db")
		if err := os.WriteFile(path, b, 0o640); err != nil {
			t.Fatal(err)
		}
		ob, err := outbox.Open(path, outbox.Options{MinFreeBytes: -1, Logger: quiet()})
		if err == nil {
			opened++
			if ob.Damage() != nil {
				damaged++
			} else if ob.Depth() != 30 {
				t.Fatalf("a changed file opened as sound with %d entries, want 30", ob.Depth())
			}
			if err := ob.Check(); err != nil {
				t.Fatalf("opened outbox fails Check: %v", err)
			}
			if _, err := ob.Pending(0, 1000); err != nil {
				t.Fatalf("opened outbox unreadable: %v", err)
			}
			ob.Close()
		}
		os.RemoveAll(d)
	}
	t.Logf("500 damaged files: %d opened (%d reported damaged, the rest had harmless flips), %d refused", opened, damaged, 500-opened)
}
