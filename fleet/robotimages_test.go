package fleet_test

import (
	"context"
	"crypto/rand"
	"image"
	"image/color"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"papscan/classify"
	"papscan/delivery"
	config "papscan/firmware-config"
	"papscan/fleet"
	"papscan/scan"
	"papscan/telemetry"
	fleetcmd "papscan/telemetry/command"
)

// dropFirstImage is a broker hook that acknowledges the first image
// publish (PUBACK) but never delivers it: a message lost after the broker
// took it.
type dropFirstImage struct {
	mqtt.HookBase
	dropped atomic.Int32
	seen    atomic.Int32
}

func (h *dropFirstImage) ID() string { return "drop-first-image" }
func (h *dropFirstImage) Provides(b byte) bool {
	return b == mqtt.OnPublish
}
func (h *dropFirstImage) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if telemetry.ImageTopic("papscan", "wire-robot", "M0001-S00") == pk.TopicName {
		if h.seen.Add(1) == 1 {
			h.dropped.Add(1)
			return pk, packets.CodeSuccessIgnore
		}
	}
	return pk, nil
}

// TestRobotImagesReachStore: a slide's result and its gallery crops go
// from the robot's delivery (outbox, sender, MQTT client) through the
// embedded broker into the receiver on SQLite, acked with a signed key
// the robot trusts. The first image publish is lost after the broker's
// PUBACK: the robot sends it again (the receiver sees the gap and asks
// for a replay, or the ack timeout) and the store holds every image once.
func TestRobotImagesReachStore(t *testing.T) {
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	key, err := fleetcmd.GenerateKey(rand.Reader, "test-receiver")
	if err != nil {
		t.Fatal(err)
	}
	l, err := fleet.StartLocal(ctx, fleet.LocalOptions{Dir: t.TempDir(), HTTPAddr: "127.0.0.1:0", BrokerAddr: "127.0.0.1:0", Logger: log,
		SignAck:    func(a *telemetry.Ack) { fleetcmd.SignAck(key, a) },
		SignReplay: func(r *telemetry.Replay) { fleetcmd.SignReplay(key, r) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hook := &dropFirstImage{}
	if err := l.Broker().Server().AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.Agent.RobotID = "wire-robot"
	cfg.Agent.StateDir = t.TempDir()
	cfg.Agent.MQTT.AckKeys = []string{key.Public().String()}
	cfg.Agent.MQTT.AckTimeout = config.Duration(3 * time.Second)
	lk, err := delivery.Open(ctx, cfg, []string{l.BrokerURL}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close(ctx)
	d := &delivery.Delivery{StateDir: cfg.Agent.StateDir, Link: lk, Log: log}

	r := &scan.Report{SlideID: "M0001-S00", ResultID: telemetry.NewID(), Verdict: "HIGH_GRADE"}
	classes := []classify.Class{classify.HSIL, classify.LSIL, classify.NILM}
	for i, c := range classes {
		r.Result.Top = append(r.Result.Top, classify.Cell{Class: c, Score: float32(0.9 - 0.3*float64(i)),
			StageX: 20000 + 100*float64(i), StageY: 30000, Crop: cellCrop(96+8*i, uint8(60*i))})
	}
	if err := d.Deliver(ctx, r); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.Flush(fctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if hook.dropped.Load() != 1 || hook.seen.Load() < 4 {
		t.Fatalf("broker saw %d image publishes, dropped %d: want the lost one sent again", hook.seen.Load(), hook.dropped.Load())
	}
	n, err := l.Store.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Results != 1 || n.Images != 3 || n.ImageRecords != 3 {
		t.Fatalf("store counts %+v: want 1 result, 3 images stored once", n)
	}
	ims, err := l.Store.Images(ctx, cfg.Agent.RobotID, r.ResultID)
	if err != nil || len(ims) != 3 {
		t.Fatalf("images %+v %v", ims, err)
	}
	for i, im := range ims {
		c := r.Result.Top[i]
		if im.Role != telemetry.ImageCrop || im.Index != i || im.Of != 3 || im.Class != c.Class.String() ||
			im.Width != c.Crop.Rect.Dx() || im.StageXUM != c.StageX || im.Score < float64(c.Score)-1e-6 || im.Score > float64(c.Score)+1e-6 {
			t.Errorf("image %d: %+v, want crop of %s %dpx at x %v score %v", i, im, c.Class, c.Crop.Rect.Dx(), c.StageX, c.Score)
		}
	}
}

// cellCrop is a pale square with a dark round nucleus.
func cellCrop(side int, tint uint8) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	for y := range side {
		for x := range side {
			dx, dy := x-side/2, y-side/2
			c := color.RGBA{230, 225, 240 - tint/2, 255}
			if dx*dx+dy*dy < side*side/36 {
				c = color.RGBA{70 + tint, 40, 110, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}
