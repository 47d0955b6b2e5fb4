package command

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestKeyFormats(t *testing.T) {
	k, err := GenerateKey(nil, "fleet-2026")
	if err != nil {
		t.Fatal(err)
	}
	line := k.Public().String()
	pk, err := ParsePublicKey(line)
	if err != nil || pk.ID != "fleet-2026" || !pk.Key.Equal(k.Key.Public()) {
		t.Fatalf("round trip %q: %v", line, err)
	}
	pemBytes, err := MarshalSigningKey(k)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseSigningKey(pemBytes, "")
	if err != nil || k2.ID != k.ID || !k2.Key.Equal(k.Key) {
		t.Fatalf("PEM round trip: %v", err)
	}
	if k3, err := ParseSigningKey(pemBytes, "renamed"); err != nil || k3.ID != "renamed" {
		t.Fatalf("key ID override: %v", err)
	}
	for _, bad := range []string{"", "nokey", ":" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"a b:" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"k:" + base64.StdEncoding.EncodeToString(make([]byte, 31)),
		"k:" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), "k:!!"} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", bad)
		}
	}
	for _, bad := range [][]byte{nil, []byte("junk"), bytes.Replace(pemBytes, []byte("PRIVATE KEY"), []byte("PUBLIC KEY"), 2)} {
		if _, err := ParseSigningKey(bad, ""); err == nil {
			t.Errorf("ParseSigningKey accepted %q", bad)
		}
	}
	if _, err := GenerateKey(nil, "bad id"); err == nil {
		t.Error("GenerateKey accepted a bad ID")
	}
}

func TestKeyRing(t *testing.T) {
	a, b := fleetKey.Public(), otherKey.Public()
	if _, err := NewKeyRing(a, PublicKey{ID: "fleet-a", Key: b.Key}); err == nil {
		t.Error("duplicate ID accepted")
	}
	if _, err := NewKeyRing(a, PublicKey{ID: "x", Key: a.Key}); err == nil {
		t.Error("duplicate key accepted")
	}
	if _, err := NewKeyRing(PublicKey{ID: "x", Key: a.Key[:31]}); err == nil {
		t.Error("short key accepted")
	}
	many := make([]PublicKey, 17)
	for i := range many {
		many[i] = testKey("k"+string(rune('a'+i)), byte(i+10)).Public()
	}
	if _, err := NewKeyRing(many...); err == nil {
		t.Error("17 keys accepted")
	}
	r, err := ParseKeyRing(a.String(), b.String())
	if err != nil || r.Len() != 2 || r.Keys()[1].ID != "fleet-b" {
		t.Fatalf("ParseKeyRing: %v", err)
	}
	file := "# fleet keys\n\n" + a.String() + "\n  " + b.String() + "  \n"
	lines, err := ReadKeyFile(strings.NewReader(file))
	if err != nil || len(lines) != 2 {
		t.Fatalf("ReadKeyFile: %v %q", err, lines)
	}
	if _, err := ReadKeyFile(strings.NewReader(a.String() + "\nbroken\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ReadKeyFile error %v, want line 2", err)
	}
}

func TestSignRequiresTimeAndKey(t *testing.T) {
	c, _ := NewCommand(testRobot, TypeStatus, nil, t0)
	c.IssuedAt = time.Time{}
	if _, err := Sign(fleetKey, c); err == nil {
		t.Error("zero issued_at signed")
	}
	c.IssuedAt = t0
	if _, err := Sign(SigningKey{}, c); err == nil {
		t.Error("signed without a key")
	}
	c.Nonce = ""
	msg, err := Sign(fleetKey, c)
	if err != nil {
		t.Fatal(err)
	}
	v := testVerifier(t)
	got, verr := v.Verify(msg, t0)
	if verr != nil || !nonceRe.MatchString(got.Nonce) {
		t.Fatalf("signed command does not verify: %v", verr)
	}
	if !ed25519.Verify(fleetKey.Key.Public().(ed25519.PublicKey), signedBytes(got.Body), got.Sig) {
		t.Error("Verified.Body/Sig do not verify")
	}
}

func TestReadStored(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, "slides", "M1-S01", "r1")
	if err := os.MkdirAll(filepath.Join(dir, "tiles"), 0o750); err != nil {
		t.Fatal(err)
	}
	png := []byte("\x89PNG fake")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "gallery.png"), png, 0o600))
	must(os.WriteFile(filepath.Join(dir, "result.json"), []byte(`{}`), 0o600))
	secret := filepath.Join(t.TempDir(), "secret.png")
	must(os.WriteFile(secret, []byte("secret"), 0o600))
	must(os.Symlink(secret, filepath.Join(dir, "overview.png"))) // escapes the state dir
	must(os.Mkdir(filepath.Join(dir, "tiles", "t.png"), 0o750))
	root, err := os.OpenRoot(state)
	must(err)
	defer root.Close()

	r, err := ReadStored(root, FetchArgs{SlideID: "M1-S01", ResultID: "r1", Item: ItemGallery}, 1<<20)
	if err != nil || !bytes.Equal(r.Data, png) || r.Size != len(png) || r.ContentType != "image/png" || len(r.SHA256) != 64 || r.Path != "slides/M1-S01/r1/gallery.png" {
		t.Fatalf("gallery: %+v %v", r, err)
	}
	if r, err := ReadStored(root, FetchArgs{SlideID: "M1-S01", ResultID: "r1", Item: ItemResult}, 1<<20); err != nil || r.ContentType != "application/json" {
		t.Fatalf("result: %v", err)
	}
	for name, tc := range map[string]struct {
		a    FetchArgs
		max  int
		want error
	}{
		"symlink out":  {FetchArgs{SlideID: "M1-S01", ResultID: "r1", Item: ItemOverview}, 1 << 20, nil},
		"missing":      {FetchArgs{SlideID: "M1-S02", ResultID: "r1", Item: ItemGallery}, 1 << 20, ErrNotFound},
		"directory":    {FetchArgs{SlideID: "M1-S01", ResultID: "r1", Item: ItemTile, Tile: "t.png"}, 1 << 20, ErrBadArgs},
		"too large":    {FetchArgs{SlideID: "M1-S01", ResultID: "r1", Item: ItemGallery}, 3, ErrTooLarge},
		"traversal":    {FetchArgs{SlideID: "..", ResultID: "..", Item: ItemGallery}, 1 << 20, ErrBadArgs},
		"unknown item": {FetchArgs{SlideID: "M1-S01", ResultID: "r1", Item: "x"}, 1 << 20, ErrBadArgs},
	} {
		_, err := ReadStored(root, tc.a, tc.max)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: err %v, want %v", name, err, tc.want)
		}
	}
}

// TestDeliverNeverBlocks: Deliver returns at once even while a handler
// blocks and the queue is full; Run answers every queued message in order.
func TestDeliverNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var replies []Reply
		r := newRig(t, func(o *DispatcherOptions) {
			o.QueueSize = 2
			o.HandlerTimeout = time.Minute
			o.Publish = func(_ context.Context, b []byte) error {
				rep, err := DecodeReply(b)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				replies = append(replies, rep)
				mu.Unlock()
				return nil
			}
		})
		release := make(chan struct{})
		r.agent.block = release
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.d.Run(ctx) }()

		var ids []string
		for i := range 3 {
			msg, c := mustSign(t, fleetKey, testRobot, TypePause, nil, t0)
			ids = append(ids, c.ID)
			if !r.d.Deliver(msg) {
				t.Fatalf("message %d dropped", i)
			}
			if i == 0 {
				synctest.Wait() // Run took it and blocks in the handler
				if len(r.agent.Calls()) != 1 {
					t.Fatal("first command not running")
				}
			}
		}
		overflow, _ := mustSign(t, fleetKey, testRobot, TypeStatus, nil, t0)
		if r.d.Deliver(overflow) {
			t.Fatal("queue of 2 took a 4th message while one is running")
		}
		if a := r.lastAudit(t); a.Code != CodeBusy || a.Accepted || a.Type != TypeStatus {
			t.Errorf("overflow audit %+v", a)
		}
		close(release)
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		if len(replies) != 3 {
			t.Fatalf("%d replies, want 3", len(replies))
		}
		for i, rep := range replies {
			if !rep.OK || rep.ID != ids[i] {
				t.Errorf("reply %d: %s, want id %s", i, describe(rep), ids[i])
			}
		}
	})
}

func TestLoadKeyRing(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fleet-keys")
	if err := os.WriteFile(file, []byte("# site keys\n"+otherKey.Public().String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := LoadKeyRing([]string{fleetKey.Public().String()}, file)
	if err != nil || r.Len() != 2 {
		t.Fatalf("LoadKeyRing: %v", err)
	}
	if _, err := LoadKeyRing(nil, file+".missing"); err == nil {
		t.Error("missing key file accepted")
	}
	if _, err := LoadKeyRing([]string{fleetKey.Public().String()}, ""); err != nil {
		t.Error(err)
	}
	// The same key in the config and the file: refused (listed twice).
	if _, err := LoadKeyRing([]string{otherKey.Public().String()}, file); err == nil {
		t.Error("duplicate key accepted")
	}
}

func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.pem")
	line, err := Keygen("fleet-2027", path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v: %v", st.Mode(), err)
	}
	if _, err := Keygen("fleet-2027", path); err == nil {
		t.Fatal("Keygen overwrote an existing key")
	}
	k, err := ReadSigningKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := ParseKeyRing(line)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := NewCommand(testRobot, TypeStatus, nil, t0)
	msg, err := Sign(k, c)
	if err != nil {
		t.Fatal(err)
	}
	v := Verifier{RobotID: testRobot, Keys: ring, MaxAge: time.Minute}
	if got, verr := v.Verify(msg, t0); verr != nil || got.KeyID != "fleet-2027" {
		t.Fatalf("generated key does not verify: %v", verr)
	}
}
