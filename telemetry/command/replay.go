package command

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
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
// skew. capacity <= 0 means DefaultReplayCapacity. A missing or corrupt
// file is not an error: the guard starts with the notBefore floor and
// Recovered says why (log it). An error means the file exists but cannot
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
		var f replayFile
		if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
			_ = os.Rename(path, path+".corrupt")
			floor(fmt.Sprintf("replay store %s unreadable (%v); kept as .corrupt", path, err))
		} else {
			g.notBefore = f.NotBefore
			for n, ms := range f.Nonces {
				if exp := time.UnixMilli(ms); !exp.Before(now) && nonceRe.MatchString(n) {
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
