//go:build !powercut_guest

package powercut

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"papscan/fleet"
	"papscan/fleet/store"
	"papscan/telemetry"
	fleetcmd "papscan/telemetry/command"
	tfleet "papscan/telemetry/fleet"
)

// TestSendReachesFleet runs the delivering boot's part without a VM: two
// boots commit (and ack some), Send empties the outbox into the fleet side
// (embedded broker, reference receiver with signed acks, SQLite), and
// checkFleet finds every committed, unacked result once, intact. A stored
// body changed behind its back and a deleted image are reported.
func TestSendReachesFleet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	state := filepath.Join(t.TempDir(), "state")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var cuts []string
	for boot := range 2 {
		var out bytes.Buffer
		if err := Commit(ctx, Options{StateDir: state, Boot: boot, Max: 6, Out: &out, Log: log}); err != nil {
			t.Fatal(err)
		}
		cuts = append(cuts, out.String())
	}
	var verify bytes.Buffer
	if err := Verify(ctx, Options{StateDir: state, Boot: 2, Out: &verify, Log: log}); err != nil {
		t.Fatal(err)
	}
	f, err := Tally(cuts, verify.String())
	if err != nil || len(f.Unacked) != 10 {
		t.Fatalf("tally %v: %v", f, err)
	}
	key, err := fleetcmd.GenerateKey(rand.Reader, "powercut-fleet")
	if err != nil {
		t.Fatal(err)
	}
	l, err := fleet.StartLocal(ctx, fleet.LocalOptions{Dir: t.TempDir(), BrokerAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Logger: log,
		SignAck:    func(a *telemetry.Ack) { fleetcmd.SignAck(key, a) },
		SignReplay: func(r *telemetry.Replay) { fleetcmd.SignReplay(key, r) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out bytes.Buffer
	if err := Send(ctx, Options{StateDir: state, Boot: 3, Out: &out, Log: log, Broker: l.BrokerURL, AckKey: key.Public().String()}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), LineDelivered+" depth=0") {
		t.Fatalf("console: %s", out.String())
	}
	if n, err := checkFleet(ctx, l.Store, f.Unacked); n != len(f.Unacked) || err != nil {
		t.Fatalf("delivered %d of %d: %v", n, len(f.Unacked), err)
	}
	// Tampering with the store is seen.
	id := f.Unacked[3]
	r, err := l.Store.Result(ctx, "powercut", id)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(r.Envelope, []byte(`"verdict":"NILM"`), []byte(`"verdict":"HSIL"`), 1)
	if _, err := l.Store.DB().ExecContext(ctx, `UPDATE records SET envelope = ? WHERE kind = 'result' AND id = ?`, bad, id); err != nil {
		t.Fatal(err)
	}
	img := f.Unacked[5] + ".img01"
	if _, err := l.Store.DB().ExecContext(ctx, `DELETE FROM images WHERE image_id = ?`, img); err != nil {
		t.Fatal(err)
	}
	n, err := checkFleet(ctx, l.Store, f.Unacked)
	if n != len(f.Unacked)-2 || err == nil || !strings.Contains(err.Error(), id+": stored body differs") ||
		!strings.Contains(err.Error(), f.Unacked[5]+": 1 images stored, 2 committed") {
		t.Fatalf("tampered store: %d, %v", n, err)
	}
}

// checkFleet checks that the fleet's store holds every result of want
// exactly once with the content Commit delivered (Expected) and its
// crops pixel for pixel, and nothing corrupt or quarantined. It returns
// how many of want are there intact.
func checkFleet(ctx context.Context, st *store.Store, want []string) (int, error) {
	const robot = "powercut"
	var problems []string
	copies := map[string]int{}
	if err := st.List(ctx, robot, func(r tfleet.Record) error {
		if r.Kind == "result" {
			copies[r.ID]++
		}
		return nil
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range want {
		if err := checkResult(ctx, st, robot, id, false); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if copies[id] != 1 {
			problems = append(problems, fmt.Sprintf("result %s stored %d times", id, copies[id]))
			continue
		}
		n++
	}
	// Results whose Deliver was cut before COMMITTED may reach the fleet
	// too: they must be intact as well.
	for id := range copies {
		if !slices.Contains(want, id) {
			if err := checkResult(ctx, st, robot, id, true); err != nil {
				problems = append(problems, "extra "+err.Error())
			}
		}
	}
	if q, err := st.Quarantine(ctx, 10); err != nil || len(q) > 0 {
		problems = append(problems, fmt.Sprintf("fleet quarantined %d messages (%v)", len(q), err))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return n, fmt.Errorf("fleet store: %s", strings.Join(problems[:min(10, len(problems))], "; "))
	}
	return n, nil
}

// checkResult checks one stored result against Expected; partial allows
// fewer images (a result whose Deliver was cut between its image commits).
func checkResult(ctx context.Context, st *store.Store, robot, id string, partial bool) error {
	body, crops, err := Expected(id)
	if err != nil {
		return err
	}
	r, err := st.Result(ctx, robot, id)
	if err != nil {
		return err
	}
	var env telemetry.Envelope
	if err := json.Unmarshal(r.Envelope, &env); err != nil {
		return fmt.Errorf("result %s: envelope: %w", id, err)
	}
	var got, exp bytes.Buffer
	if err := json.Compact(&got, env.Body); err != nil {
		return fmt.Errorf("result %s: body: %w", id, err)
	}
	if err := json.Compact(&exp, body); err != nil {
		return err
	}
	if sha256.Sum256(got.Bytes()) != sha256.Sum256(exp.Bytes()) {
		return fmt.Errorf("result %s: stored body differs from the one committed:\n%s\n%s", id, got.Bytes(), exp.Bytes())
	}
	ims, err := st.Images(ctx, robot, id)
	if err != nil {
		return err
	}
	if len(ims) != len(crops) && !partial {
		return fmt.Errorf("result %s: %d images stored, %d committed", id, len(ims), len(crops))
	}
	for k, im := range ims {
		b, err := st.ImagePNG(ctx, robot, im.ImageID)
		if err != nil {
			return err
		}
		got, err := pixels(b)
		if err != nil {
			return fmt.Errorf("image %s: %w", im.ImageID, err)
		}
		// The crop as PNG reads back (its colours are not valid
		// premultiplied RGBA: the encoder and decoder normalise them).
		var enc bytes.Buffer
		if err := png.Encode(&enc, crops[k]); err != nil {
			return err
		}
		exp, err := pixels(enc.Bytes())
		if err != nil {
			return err
		}
		if im.Index != k || got.Rect.Size() != exp.Rect.Size() || !bytes.Equal(got.Pix, exp.Pix) {
			return fmt.Errorf("image %s (index %d): pixels differ from the crop committed", im.ImageID, im.Index)
		}
	}
	return nil
}

// pixels decodes a PNG to RGBA.
func pixels(b []byte) (*image.RGBA, error) {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	rgba := image.NewRGBA(image.Rect(0, 0, img.Bounds().Dx(), img.Bounds().Dy()))
	draw.Draw(rgba, rgba.Rect, img, img.Bounds().Min, draw.Src)
	return rgba, nil
}
