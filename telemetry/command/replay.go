package command

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// DefaultReplayCapacity bounds the nonces remembered at once.
const DefaultReplayCapacity = 1024

// ReplayGuard remembers the nonce of every accepted command until the
// command's timestamp alone refuses it (issued_at + max age), so a
// captured command can never run twice:
//
//   - Window: Verify refuses issued_at older than max age (or further
//     ahead than the clock skew). An accepted command's nonce is kept until
//     issued_at + max age by the robot's clock; after that the stale check
//     refuses any replay of it, so the entry can go.
//   - Bounded: at most capacity unexpired nonces. When full, new commands
//     are refused "busy" and nothing is evicted (eviction would reopen a
//     replay). Only commands with a valid fleet signature get this far, so
//     only the fleet can fill it (capacity / max age commands per second).
//   - Restart: the nonces are persisted (write to a temporary file, fsync,
//     rename, fsync the directory) BEFORE the command runs, so a restart
//     reloads them. If the file is missing or unreadable (first start, wiped
//     or corrupt state directory, in-memory guard), the guard cannot know
//     what ran before, so it refuses every command issued before
//     notBefore = start + clock skew: any command accepted by an earlier
//     process was issued at most clock skew after it was accepted, hence
//     before this start + skew. Fresh commands are accepted after at most
//     clock skew. The floor is persisted with the nonces.
//   - Clock steps: entries expire by the robot's clock. A backward step
//     keeps entries longer (safe); a forward step also ages commands, which
//     the stale check then refuses.
//
// A persist failure (disk full, I/O error) refuses the command "internal";
// its nonce stays remembered in memory (burnt), so it cannot run later
// either. ReplayGuard is safe for concurrent use.
type ReplayGuard struct {
	mu        sync.Mutex
	path      string
	capacity  int
	nonces    map[string]time.Time // nonce -> expiry
	notBefore time.Time
	recovered string
}

type replayFile struct {
	Version   int              `json:"version"`
	NotBefore time.Time        `json:"not_before,omitzero"`
	Nonces    map[string]int64 `json:"nonces"` // nonce -> expiry, Unix milliseconds
}

// OpenReplayGuard loads the guard persisted at path ("" = in memory only,
// for tests and the fleet side), at time now with the configured clock
// skew. capacity <= 0 means DefaultReplayCapacity. A missing file, or one
// that fails validation (decodeReplayFile: strict JSON, a floor not in
// the future, at most capacity well-formed nonces expiring within 2 h),
// is not an error: a rejected file is kept aside as
// <path>.corrupt-<unix ms> (never overwritten), the guard starts with
// the notBefore floor and Recovered says why (log it). An error means the file exists but cannot
// be read, or the directory cannot be written.
func OpenReplayGuard(path string, capacity int, now time.Time, skew time.Duration) (*ReplayGuard, error) {
	if capacity <= 0 {
		capacity = DefaultReplayCapacity
	}
	g := &ReplayGuard{path: path, capacity: capacity, nonces: map[string]time.Time{}}
	floor := func(why string) {
		g.notBefore = now.Add(skew)
		g.recovered = why
	}
	if path == "" {
		floor("in-memory replay guard")
		return g, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		floor("no replay store at " + path + " (first start or wiped state)")
	case err != nil:
		return nil, fmt.Errorf("command: replay store: %w", err)
	default:
		f, err := decodeReplayFile(b, capacity, now, skew)
		if err != nil {
			kept, aerr := keepAsideStore(path, now)
			floor(fmt.Sprintf("replay store %s rejected (%v); kept as %s", path, errors.Join(err, aerr), kept))
		} else {
			g.notBefore = f.NotBefore
			for n, ms := range f.Nonces {
				if exp := time.UnixMilli(ms); !exp.Before(now) {
					g.nonces[n] = exp
				}
			}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.persist(); err != nil {
		return nil, err
	}
	return g, nil
}

// maxNonceLife bounds how far ahead a stored nonce may expire: a nonce is
// kept until issued_at + max_age, with issued_at at most clock_skew ahead
// (max_age <= 1 h, clock_skew <= 10 min by configuration).
const maxNonceLife = 2 * time.Hour

// decodeReplayFile decodes and validates the persisted store: strict
// JSON, version 1, a floor not beyond now + skew, at most capacity
// nonces of the right shape expiring within maxNonceLife. A file that
// fails is not trusted at all (the guard falls back to the floor): a
// forged floor in the future would refuse every command forever, and
// nonces that never expire would fill the store.
func decodeReplayFile(b []byte, capacity int, now time.Time, skew time.Duration) (replayFile, error) {
	var f replayFile
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return f, err
	}
	if d.More() {
		return f, errors.New("trailing data after the JSON object")
	}
	switch {
	case f.Version != 1:
		return f, fmt.Errorf("field version: %d, want 1", f.Version)
	case f.NotBefore.After(now.Add(skew)):
		return f, fmt.Errorf("field not_before: %s is after now + clock skew", f.NotBefore.UTC().Format(time.RFC3339))
	case len(f.Nonces) > capacity:
		return f, fmt.Errorf("field nonces: %d, more than the capacity %d", len(f.Nonces), capacity)
	}
	limit := now.Add(maxNonceLife).UnixMilli()
	for n, ms := range f.Nonces {
		if !nonceRe.MatchString(n) {
			return f, fmt.Errorf("field nonces: %q is not a nonce", n)
		}
		if ms > limit {
			return f, fmt.Errorf("field nonces[%q]: expires after now + %v", n, maxNonceLife)
		}
	}
	return f, nil
}

// keepAsideStore renames a rejected store to <path>.corrupt-<unix ms>
// (with -1, -2, ... if taken: a file kept aside is never overwritten).
func keepAsideStore(path string, now time.Time) (string, error) {
	base := path + ".corrupt-" + strconv.FormatInt(now.UnixMilli(), 10)
	to := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		to = base + "-" + strconv.Itoa(i)
	}
	return to, os.Rename(path, to)
}

// Recovered says why the guard started with a notBefore floor ("" when it
// loaded its persisted state).
func (g *ReplayGuard) Recovered() string { return g.recovered }

// NotBefore is the floor: commands issued before it are refused.
func (g *ReplayGuard) NotBefore() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.notBefore
}

// Len is the number of nonces remembered (expired ones included until the
// next Admit prunes them).
func (g *ReplayGuard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.nonces)
}

// Admit records the nonce of a verified command issued at issuedAt that
// stays acceptable until expires, or refuses it: stale (issued before the
// floor), replay (nonce seen), busy (store full), internal (not
// persisted). Only an admitted command may run.
func (g *ReplayGuard) Admit(nonce string, issuedAt, expires, now time.Time) *Error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if issuedAt.Before(g.notBefore) {
		return refuse(CodeStale, "issued_at %s is before %s: this robot lost its replay memory (restart); re-issue the command",
			issuedAt.UTC().Format(time.RFC3339Nano), g.notBefore.UTC().Format(time.RFC3339Nano))
	}
	maps.DeleteFunc(g.nonces, func(_ string, exp time.Time) bool { return exp.Before(now) })
	if _, seen := g.nonces[nonce]; seen {
		return refuse(CodeReplay, "nonce %q already used", nonce)
	}
	if len(g.nonces) >= g.capacity {
		return refuse(CodeBusy, "replay store full (%d commands within the max age); retry later", g.capacity)
	}
	g.nonces[nonce] = expires
	if err := g.persist(); err != nil {
		return refuse(CodeInternal, "replay store not saved, command not run: %v", err)
	}
	return nil
}

// persist writes the state atomically and durably. g.mu is held.
func (g *ReplayGuard) persist() error {
	if g.path == "" {
		return nil
	}
	f := replayFile{Version: 1, NotBefore: g.notBefore, Nonces: make(map[string]int64, len(g.nonces))}
	for n, exp := range g.nonces {
		// Rounded up: an entry must never expire before its command does.
		f.Nonces[n] = (exp.UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	dir := filepath.Dir(g.path)
	tmp, err := os.CreateTemp(dir, ".nonces-*")
	if err != nil {
		return fmt.Errorf("command: replay store: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("command: replay store: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("command: replay store: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("command: replay store: %w", err)
	}
	if err := os.Rename(tmp.Name(), g.path); err != nil {
		return fmt.Errorf("command: replay store: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("command: replay store: sync dir: %w", err)
		}
	}
	return nil
}
