package command

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReplayStoreHostile (finding 2/6, nonce store): the nonce store is
// read back from disk and is hostile input. A not_before far in the
// future used to be trusted (every command refused as stale, forever);
// thousands of nonces that never expire filled the store (every command
// refused busy, forever); and a second damaged file overwrote the first
// one kept aside. Now such a file is kept aside under a timestamped
// name and the guard starts with the safe floor.
func TestReplayStoreHostile(t *testing.T) {
	many := map[string]int64{}
	for i := range 2000 {
		many[fmt.Sprintf("nonce-%016d", i)] = t0.Add(1000 * time.Hour).UnixMilli()
	}
	manyJSON, _ := json.Marshal(many)
	for _, tc := range []struct{ name, file string }{
		{"floor in the future", `{"version":1,"not_before":"9999-01-01T00:00:00Z","nonces":{}}`},
		{"never-expiring nonces", `{"version":1,"nonces":` + string(manyJSON) + `}`},
		{"unknown field", `{"version":1,"nonces":{},"evict":true}`},
		{"bad nonce", `{"version":1,"nonces":{"../x":1}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "command-nonces.json")
			for round := range 2 {
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				now := t0.Add(time.Duration(round) * time.Second)
				g, err := OpenReplayGuard(path, 0, now, skew)
				if err != nil {
					t.Fatal(err)
				}
				if g.Recovered() == "" || !g.NotBefore().Equal(now.Add(skew)) {
					t.Fatalf("hostile store trusted: recovered %q, not_before %v", g.Recovered(), g.NotBefore())
				}
				issued := now.Add(time.Minute)
				if err := g.Admit("fresh-nonce-0000000001", issued, issued.Add(2*time.Minute), issued); err != nil {
					t.Fatalf("a fresh command after the floor is refused: %v", err)
				}
			}
			kept, _ := filepath.Glob(path + ".corrupt-*")
			if len(kept) != 2 {
				t.Fatalf("damaged files kept aside: %v, want 2 (never overwritten)", kept)
			}
		})
	}
}

// FuzzReplayStore: whatever the nonce store holds, OpenReplayGuard does
// not panic, and the guard it returns neither refuses fresh commands
// forever (floor at most now + skew) nor holds more than its capacity.
func FuzzReplayStore(f *testing.F) {
	f.Add([]byte(`{"version":1,"not_before":"2026-11-21T08:00:30Z","nonces":{"nonce-aaaaaaaaaaaaaaaa":1795000000000}}`))
	f.Add([]byte(`{"version":1,"nonces":null}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "command-nonces.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		g, err := OpenReplayGuard(path, 16, t0, skew)
		if err != nil {
			t.Fatal(err)
		}
		if g.NotBefore().After(t0.Add(skew)) || g.Len() > 16 {
			t.Fatalf("not_before %v, %d nonces", g.NotBefore(), g.Len())
		}
	})
}
