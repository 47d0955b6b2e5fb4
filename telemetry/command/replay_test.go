package command

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const skew = 30 * time.Second

func TestReplayGuardSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "command-nonces.json")
	g, err := OpenReplayGuard(path, 0, t0, skew)
	if err != nil {
		t.Fatal(err)
	}
	if g.Recovered() == "" || !g.NotBefore().Equal(t0.Add(skew)) {
		t.Fatalf("first start: recovered %q, notBefore %v", g.Recovered(), g.NotBefore())
	}
	issued := t0.Add(time.Minute)
	now := t0.Add(time.Minute)
	if err := g.Admit("nonce-aaaaaaaaaaaaaaaa", issued, issued.Add(2*time.Minute+time.Nanosecond), now); err != nil {
		t.Fatal(err)
	}

	// Restart (new process) just before expiry: the nonce is remembered.
	g2, err := OpenReplayGuard(path, 0, issued.Add(2*time.Minute), skew)
	if err != nil {
		t.Fatal(err)
	}
	if g2.Recovered() != "" || g2.Len() != 1 {
		t.Fatalf("reloaded: recovered %q, %d nonces", g2.Recovered(), g2.Len())
	}
	if err := g2.Admit("nonce-aaaaaaaaaaaaaaaa", issued, issued.Add(2*time.Minute), issued.Add(2*time.Minute)); err == nil || err.Code != CodeReplay {
		t.Fatalf("replay after restart: %v", err)
	}
	// The floor of the first start was persisted too.
	if !g2.NotBefore().Equal(t0.Add(skew)) {
		t.Errorf("notBefore %v not persisted", g2.NotBefore())
	}
	// Much later the expired entry is dropped at load.
	g3, err := OpenReplayGuard(path, 0, issued.Add(time.Hour), skew)
	if err != nil || g3.Len() != 0 {
		t.Fatalf("expired entries kept: %d, %v", g3.Len(), err)
	}
}

func TestReplayGuardFloorWithoutMemory(t *testing.T) {
	dir := t.TempDir()
	for name, setup := range map[string]func(path string){
		"missing": func(string) {},
		"corrupt": func(p string) { _ = os.WriteFile(p, []byte(`{"version":1,"nonces":`), 0o600) },
		"version": func(p string) { _ = os.WriteFile(p, []byte(`{"version":9,"nonces":{}}`), 0o600) },
		"memory":  nil,
	} {
		t.Run(name, func(t *testing.T) {
			path := ""
			if setup != nil {
				path = filepath.Join(dir, name+".json")
				setup(path)
			}
			start := t0
			g, err := OpenReplayGuard(path, 0, start, skew)
			if err != nil {
				t.Fatal(err)
			}
			if g.Recovered() == "" {
				t.Error("Recovered empty")
			}
			// A command accepted by the previous process just before this
			// start was issued at most skew after it: refused.
			aerr := g.Admit("nonce-bbbbbbbbbbbbbbbb", start.Add(skew-time.Millisecond), start.Add(3*time.Minute), start)
			if aerr == nil || aerr.Code != CodeStale || !strings.Contains(aerr.Message, "replay memory") {
				t.Fatalf("admitted a command issued before the floor: %v", aerr)
			}
			if err := g.Admit("nonce-cccccccccccccccc", start.Add(skew), start.Add(3*time.Minute), start.Add(skew)); err != nil {
				t.Fatalf("fresh command refused: %v", err)
			}
			if name == "corrupt" {
				if kept, _ := filepath.Glob(path + ".corrupt-*"); len(kept) != 1 {
					t.Errorf("corrupt file not kept: %v", kept)
				}
			}
		})
	}
}

func TestReplayGuardPersistFailureBurnsNonce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nonces.json")
	g, err := OpenReplayGuard(path, 0, t0.Add(-time.Hour), skew)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil { // the state directory vanished
		t.Fatal(err)
	}
	if err := g.Admit("nonce-dddddddddddddddd", t0, t0.Add(time.Minute), t0); err == nil || err.Code != CodeInternal {
		t.Fatalf("persist failure: %v", err)
	}
	if err := g.Admit("nonce-dddddddddddddddd", t0, t0.Add(time.Minute), t0); err == nil || err.Code != CodeReplay {
		t.Fatalf("nonce not burnt after a persist failure: %v", err)
	}
}

func TestReplayGuardUnreadableIsError(t *testing.T) {
	dir := t.TempDir() // a directory where the file should be: read fails
	if _, err := OpenReplayGuard(dir, 0, t0, skew); err == nil {
		t.Fatal("opened a directory as replay store")
	}
}

func TestReplayGuardPersistedEntriesRoundUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.json")
	g, _ := OpenReplayGuard(path, 0, t0.Add(-time.Hour), skew)
	exp := t0.Add(1500 * time.Microsecond) // 1.5 ms: must not become 1 ms
	if err := g.Admit("nonce-eeeeeeeeeeeeeeee", t0, exp, t0); err != nil {
		t.Fatal(err)
	}
	g2, _ := OpenReplayGuard(path, 0, exp, skew)
	if g2.Len() != 1 {
		t.Fatalf("entry expired early at reload")
	}
}
