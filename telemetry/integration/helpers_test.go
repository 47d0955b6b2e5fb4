package integration_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/command"
	"papscan/telemetry/fleet"
	"papscan/telemetry/outbox"
)

func TestMain(m *testing.M) {
	if os.Getenv(producerEnv) != "" {
		os.Exit(runProducer())
	}
	os.Exit(m.Run())
}

func logger() *slog.Logger {
	if os.Getenv("PAPSCAN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Short timings so the fault tests run in seconds.
const (
	keepAlive    = 2 * time.Second
	pingTimeout  = time.Second
	maxReconnect = time.Second
	ackTimeout   = 2 * time.Second
)

// receiverKey is the fleet receiver's signing key in these tests (fixed,
// so the producer subprocess trusts it too).
func receiverKey() command.SigningKey {
	return command.SigningKey{ID: "test-receiver", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))}
}

func robotOptions(brokers []string, robot string) telemetry.Options {
	ring, err := command.NewKeyRing(receiverKey().Public())
	if err != nil {
		panic(err) // a fixed, valid key
	}
	return telemetry.Options{
		Brokers: brokers, RobotID: robot, Logger: logger(),
		KeepAlive: keepAlive, PingTimeout: pingTimeout, ConnectTimeout: 2 * time.Second,
		PublishTimeout: 2 * time.Second, MaxReconnectInterval: maxReconnect,
		FleetAuth: ring,
	}
}

// robot is an outbox, its sender and the MQTT client.
type robot struct {
	ob     *outbox.Outbox
	snd    *outbox.Sender
	tm     *telemetry.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startRobot(t testing.TB, dir string, brokers []string, name string, mod func(*telemetry.Options)) *robot {
	t.Helper()
	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{MinFreeBytes: -1, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	r := &robot{ob: ob, done: make(chan struct{})}
	r.snd = outbox.NewSender(ob, outbox.SenderOptions{AckTimeout: ackTimeout, RetryInterval: 200 * time.Millisecond, Logger: logger()})
	o := robotOptions(brokers, name)
	o.OnAck, o.OnReplay, o.OnConnected = r.snd.HandleAck, r.snd.HandleReplay, r.snd.Reconnected
	if mod != nil {
		mod(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r.tm, err = telemetry.Dial(ctx, o)
	if err != nil {
		ob.Close()
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	r.cancel = stop
	go func() { defer close(r.done); _ = r.snd.Run(sctx, r.tm) }()
	t.Cleanup(r.stop)
	return r
}

func (r *robot) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = r.tm.Close(ctx)
	_ = r.ob.Close()
	r.cancel = nil
}

// fleetSide is the reference receiver plus what it stored.
type fleetSide struct {
	store *fleet.Store
	rcv   *fleet.Receiver
	stop  context.CancelFunc

	mu   sync.Mutex
	ids  map[string]fleet.Record
	more chan struct{}
}

func startFleet(t testing.TB, brokers []string, tc *tls.Config) *fleetSide {
	t.Helper()
	st, err := fleet.OpenStore(filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fleetSide{store: st, ids: map[string]fleet.Record{}, more: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	f.rcv, err = fleet.Start(ctx, st, fleet.Options{
		Brokers: brokers, ClientID: "fleet-" + telemetry.NewID()[24:], TLS: tc, Logger: logger(),
		KeepAlive: keepAlive, MaxReconnectInterval: maxReconnect, ReplayInterval: time.Second,
		SignAck:    func(a *telemetry.Ack) { command.SignAck(receiverKey(), a) },
		SignReplay: func(r *telemetry.Replay) { command.SignReplay(receiverKey(), r) },
		OnStored: func(rs []fleet.Record) {
			f.mu.Lock()
			for _, r := range rs {
				f.ids[r.ID] = r
			}
			f.mu.Unlock()
			select {
			case f.more <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		cancel()
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		<-f.rcv.Done()
		f.rcv.Close()
		st.Close()
	})
	return f
}

func (f *fleetSide) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ids)
}

// waitFor waits until the fleet holds every id in want (and returns the
// missing ones on timeout).
func (f *fleetSide) waitFor(want map[string]string, timeout time.Duration) []string {
	deadline := time.After(timeout)
	for {
		f.mu.Lock()
		var missing []string
		for id := range want {
			if _, ok := f.ids[id]; !ok {
				missing = append(missing, id)
			}
		}
		f.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-f.more:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return missing
		}
	}
}

// checkRecords: every stored record with an expected ID carries the
// expected slide (a duplicate is the same result, not another one).
func (f *fleetSide) checkRecords(t testing.TB, want map[string]string) (copies int) {
	t.Helper()
	err := f.store.List("", func(r fleet.Record) error {
		if slide, ok := want[r.ID]; ok && slide != r.SlideID {
			return fmt.Errorf("result %s: slide %q, want %q", r.ID, r.SlideID, slide)
		}
		copies += r.Copies
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return copies
}

func waitDepth0(ob *outbox.Outbox, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for ob.Depth() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return ob.Depth() == 0
}

// startSender dials for an already opened robot outbox and runs its sender.
func startSender(t testing.TB, r *robot, url string) {
	t.Helper()
	o := robotOptions([]string{url}, "robot-bench")
	o.OnAck, o.OnReplay, o.OnConnected = r.snd.HandleAck, r.snd.HandleReplay, r.snd.Reconnected
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	if r.tm, err = telemetry.Dial(ctx, o); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	r.cancel = stop
	go func() { defer close(r.done); _ = r.snd.Run(sctx, r.tm) }()
	t.Cleanup(r.stop)
}
