package powercut

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"papscan/telemetry/outbox"
)

// TestCommitVerifyTally runs the guest's two modes on a temporary
// directory (no VM, no cut): two boots commit and ack, the verifying
// boot finds everything, and Tally agrees. Then a result is removed from
// the outbox behind the guest's back (no ACKED line): Tally names it.
func TestCommitVerifyTally(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	state := filepath.Join(t.TempDir(), "state")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var cuts []string
	for boot := range 2 {
		var out bytes.Buffer
		if err := Commit(ctx, Options{StateDir: state, Boot: boot, Max: 9, Out: &out, Log: log}); err != nil {
			t.Fatal(err)
		}
		cuts = append(cuts, out.String())
	}
	verify := func() string {
		var out bytes.Buffer
		if err := Verify(ctx, Options{StateDir: state, Boot: 99, Out: &out, Log: log}); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	f, err := Tally(cuts, verify())
	if err != nil {
		t.Fatalf("%v: %v", f, err)
	}
	if f.Cuts != 2 || f.Opens != 3 || f.Committed != 18 || f.Found != 18 || f.Acked != 4 || f.Images != 2*14 || f.Damaged != 0 || f.Corrupt != 0 {
		t.Fatalf("figures %v", f)
	}
	ob, err := outbox.Open(filepath.Join(state, "outbox.db"), outbox.Options{MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ob.Ack(ResultID(1, 7)); n != 1 || err != nil {
		t.Fatalf("ack: %d %v", n, err)
	}
	ob.Close()
	f, err = Tally(cuts, verify())
	if err == nil || len(f.Missing) != 1 || f.Missing[0] != ResultID(1, 7) || !strings.Contains(err.Error(), "1 committed results missing") {
		t.Fatalf("a lost result not reported: %v, %v", f, err)
	}
	// A damaged open and a corrupt file fail the tally.
	if _, err := Tally([]string{"OPEN boot=0 depth=0 damage=torn check=ok\nCOMMITTED x 0\n"}, "OPEN boot=1 depth=1 damage=none check=ok\nHELD result x x\nFILE x 0\nCORRUPT y bad\nPOWERCUT-DONE\n"); err == nil ||
		!strings.Contains(err.Error(), "damaged open: torn") || !strings.Contains(err.Error(), "CORRUPT y bad") {
		t.Fatalf("tally: %v", err)
	}
}
