package integration_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/fleet/pgtest"
	"papscan/fleet/store"
	"papscan/telemetry"
	tfleet "papscan/telemetry/fleet"
	"papscan/telemetry/internal/mqtttest"
)

// receiverEnv makes the test binary a fleet receiver process (the load
// test starts three and SIGKILLs one): "dsn|broker|client-id|site-mode".
const receiverEnv = "PAPSCAN_FLEET_TEST_RECEIVER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(receiverEnv); spec != "" {
		os.Exit(receiverMain(spec))
	}
	os.Exit(m.Run())
}

// receiverMain runs one receiver (shared subscription "fleet") until
// SIGTERM; it prints "subscribed" on stderr once it takes traffic.
func receiverMain(spec string) int {
	f := strings.Split(spec, "|")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	st, err := store.Open(ctx, f[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r, err := tfleet.Start(ctx, st, tfleet.Options{Brokers: []string{f[1]}, ClientID: f[2], Share: "fleet",
		Sites: f[3] == "sites", Logger: log, ReplayInterval: 2 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	<-ctx.Done()
	<-r.Done()
	r.Close()
	st2 := r.Stats()
	fmt.Fprintf(os.Stderr, "receiver %s: %+v\n", f[2], st2)
	return 0
}

// receiverProc is a receiver running in its own process.
type receiverProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startReceiver(t testing.TB, dsn, broker, id string, sites bool) *receiverProc {
	t.Helper()
	mode := "plain"
	if sites {
		mode = "sites"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), receiverEnv+"="+dsn+"|"+broker+"|"+id+"|"+mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &receiverProc{cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "fleet: subscribed") {
				once.Do(func() { close(ready) })
			}
			if strings.Contains(line, "level=ERROR") || strings.HasPrefix(line, "receiver ") {
				t.Logf("%s: %s", id, line)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("receiver %s exited before subscribing", id)
	case <-time.After(30 * time.Second):
		t.Fatalf("receiver %s did not subscribe", id)
	}
	t.Cleanup(func() { p.stop(syscall.SIGKILL) })
	return p
}

func (p *receiverProc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// simRobot publishes its results and images like the outbox sender: a
// window of unacked messages, each re-sent until the fleet acks it.
type simRobot struct {
	id      string
	c       paho.Client
	prefix  string // topic prefix the robot uses
	msgs    []tfleet.Item
	payload map[string][]byte
	topic   map[string]string

	mu      sync.Mutex
	first   map[string]time.Time // first publish of each unacked message
	last    map[string]time.Time
	acked   map[string]bool
	results map[string]bool
	lat     []time.Duration // result ack latencies
	resends int
	wake    chan struct{}
}

var cropPNG = func() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 48, 48))
	for y := range 48 {
		for x := range 48 {
			img.Set(x, y, color.RGBA{uint8(150 + x), uint8(100 + y), 190, 255})
		}
	}
	return img
}()

func newSimRobot(t testing.TB, broker, prefix, id string, results int) *simRobot {
	t.Helper()
	r := &simRobot{id: id, prefix: prefix, payload: map[string][]byte{}, topic: map[string]string{},
		first: map[string]time.Time{}, last: map[string]time.Time{}, acked: map[string]bool{}, results: map[string]bool{},
		wake: make(chan struct{}, 1)}
	session := telemetry.NewID()
	seq := uint64(0)
	for i := range results {
		seq++
		rid := telemetry.NewID()
		slide := fmt.Sprintf("S-%s-%03d", id, i)
		body, _ := json.Marshal(map[string]any{"verdict": []string{"NILM", "LOW_GRADE", "HIGH_GRADE"}[i%3], "tiles_planned": 100, "tiles_analysed": 100,
			"result": map[string]any{"top": []map[string]float64{{"score": 0.5 + float64(i%50)/100}}}})
		env, _ := json.Marshal(telemetry.Envelope{Schema: telemetry.Schema, Kind: telemetry.KindResult, MessageID: telemetry.NewID(), RobotID: id,
			SlideID: slide, ResultID: rid, OutboxSession: session, OutboxSeq: seq, OutboxFloor: 1, Body: body})
		r.add(rid, prefix+"/"+id+"/result/"+slide, env)
		r.results[rid] = true
		m, err := telemetry.NewImage(id, slide, rid, telemetry.ImageCrop, 0, 1, cropPNG, 0.5)
		if err != nil {
			t.Error(err)
			return nil
		}
		seq++
		m.Body.Score, m.Body.Class, m.OutboxSession, m.OutboxSeq, m.OutboxFloor = 0.9, "HSIL", session, seq, 1
		b, err := telemetry.EncodeImage(m)
		if err != nil {
			t.Error(err)
			return nil
		}
		r.add(m.ImageID, telemetry.ImageTopic(prefix, id, slide), b)
	}
	po := telemetry.SessionOptions(telemetry.Session{Brokers: []string{broker}, ClientID: id, KeepAlive: 10 * time.Second, MaxReconnectInterval: time.Second})
	po.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe(telemetry.AckTopic(prefix, id), 1, r.onAck)
	})
	r.c = paho.NewClient(po)
	if tok := r.c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Errorf("robot %s: connect: %v", id, tok.Error())
		return nil
	}
	t.Cleanup(func() { r.c.Disconnect(0) })
	return r
}

func (r *simRobot) add(id, topic string, payload []byte) {
	r.msgs = append(r.msgs, tfleet.Item{ID: id})
	r.payload[id], r.topic[id] = payload, topic
}

func (r *simRobot) onAck(_ paho.Client, m paho.Message) {
	var a telemetry.Ack
	if json.Unmarshal(m.Payload(), &a) != nil {
		return
	}
	now := time.Now()
	r.mu.Lock()
	for _, id := range a.IDs {
		if r.acked[id] {
			continue
		}
		if t0, ok := r.first[id]; ok {
			r.acked[id] = true
			if r.results[id] {
				r.lat = append(r.lat, now.Sub(t0))
			}
			delete(r.first, id)
			delete(r.last, id)
		}
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run sends everything with at most window messages unacked and re-sends
// what is not acked within ackTimeout; it returns when all are acked.
func (r *simRobot) run(ctx context.Context, window int, ackTimeout time.Duration, ackedResults *atomic.Int64) error {
	next := 0
	tick := time.NewTicker(ackTimeout / 4)
	defer tick.Stop()
	counted := 0
	for {
		r.mu.Lock()
		now := time.Now()
		var send []string
		for next < len(r.msgs) && len(r.first) < window {
			id := r.msgs[next].ID
			next++
			r.first[id], r.last[id] = now, now
			send = append(send, id)
		}
		for id, t := range r.last {
			if now.Sub(t) >= ackTimeout && !slices.Contains(send, id) {
				r.last[id] = now
				r.resends++
				send = append(send, id)
			}
		}
		done := next == len(r.msgs) && len(r.first) == 0
		n := len(r.lat)
		r.mu.Unlock()
		ackedResults.Add(int64(n - counted))
		counted = n
		for _, id := range send {
			r.c.Publish(r.topic[id], 1, false, r.payload[id]) // not waited for: the ack is what counts
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			r.mu.Lock()
			defer r.mu.Unlock()
			return fmt.Errorf("robot %s: %d of %d messages unacked: %w", r.id, len(r.first)+len(r.msgs)-next, len(r.msgs), ctx.Err())
		case <-r.wake:
		case <-tick.C:
		}
	}
}

type loadResult struct {
	wall     time.Duration
	results  int
	p50, p99 time.Duration
	resends  int
}

// runLoad: robots x perRobot results, each with one crop image, through
// Mosquitto into three receiver processes sharing the subscription, on
// PostgreSQL. With faults, one receiver is SIGKILLed after a third of the
// results were acked and every database connection is terminated after
// two thirds.
func runLoad(t testing.TB, robots, perRobot int, faults bool) loadResult {
	t.Helper()
	if mqtttest.Binary() == "" {
		mqtttest.RequireMosquitto(t)
	}
	pg, err := pgtest.Start(context.Background())
	if err != nil {
		pgtest.Skip(t, err)
	}
	t.Cleanup(func() { pg.Close() })
	dsn, err := pg.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), dsn) // migrate before the receivers start
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Now()
	m := mqtttest.StartMosquitto(t, nil)
	var recv []*receiverProc
	for i := range 3 {
		recv = append(recv, startReceiver(t, dsn, m.URL, fmt.Sprintf("fleet-rx-%d", i), false))
	}
	sims := make([]*simRobot, robots)
	var wg sync.WaitGroup
	for i := range robots {
		wg.Go(func() { sims[i] = newSimRobot(t, m.URL, "papscan", fmt.Sprintf("robot-%03d", i), perRobot) })
	}
	wg.Wait()
	for _, r := range sims {
		if r == nil {
			t.FailNow() // newSimRobot reported why
		}
	}
	t.Logf("setup: broker, receivers and %d robots in %v", robots, time.Since(t0).Round(time.Millisecond))
	total := int64(robots * perRobot)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var acked atomic.Int64
	start := time.Now()
	errs := make(chan error, robots)
	for _, r := range sims {
		go func() { errs <- r.run(ctx, 4, 3*time.Second, &acked) }()
	}
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		if !faults {
			return
		}
		killed, dbCut := false, false
		for !dbCut && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond) // watching progress, not timing a test
			a := acked.Load()
			if !killed && a >= total/3 {
				recv[1].stop(syscall.SIGKILL)
				killed = true
				t.Logf("receiver fleet-rx-1 SIGKILLed at %d/%d results acked", a, total)
			}
			if killed && a >= 2*total/3 {
				n, err := pg.KillConnections(context.Background(), dsn)
				dbCut = true
				t.Logf("%d database connections terminated at %d/%d results acked (%v)", n, a, total, err)
			}
		}
	}()
	for range robots {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	wall := time.Since(start)
	cancel()
	<-faultsDone
	var lat []time.Duration
	res := loadResult{wall: wall, results: int(total)}
	for _, r := range sims {
		r.mu.Lock()
		lat = append(lat, r.lat...)
		res.resends += r.resends
		r.mu.Unlock()
	}
	slices.Sort(lat)
	if len(lat) != int(total) {
		t.Fatalf("%d results acked, want %d", len(lat), total)
	}
	res.p50, res.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	t1 := time.Now()
	for _, p := range recv {
		p.stop(syscall.SIGTERM)
	}
	t.Logf("receivers stopped in %v", time.Since(t1).Round(time.Millisecond))
	// Exactly once: one row per result and per image, nothing refused.
	c, err := st.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Results != int(total) || c.Images != int(total) || c.ImageRecords != int(total) || c.Quarantined != 0 {
		t.Fatalf("stored %+v, want %d results and %d images exactly once", c, total, total)
	}
	var distinct int
	if err := st.DB().QueryRow(`SELECT COUNT(DISTINCT robot_id || '/' || id) FROM records WHERE kind = 'result'`).Scan(&distinct); err != nil || distinct != int(total) {
		t.Fatalf("%d distinct results (%v), want %d", distinct, err, total)
	}
	return res
}

// TestLoadSharedReceivers: 200 robots x 20 results with images into three
// receivers sharing the subscription on PostgreSQL; one receiver is
// SIGKILLed and the database connections are cut mid-stream: 4,000 of
// 4,000 results (and images) stored exactly once, all acked.
func TestLoadSharedReceivers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	r := runLoad(t, 200, 20, true)
	t.Logf("%d results + %d images in %v (%.0f results/s); ack latency p50 %v, p99 %v; %d re-sends",
		r.results, r.results, r.wall.Round(time.Millisecond), float64(r.results)/r.wall.Seconds(), r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.resends)
}

// BenchmarkFleetLoad: the load test's figures for BENCHMARKS.md (one
// scenario per iteration): steady, and with a receiver SIGKILLed and the
// database connections cut. It runs only with PAPSCAN_BENCH_FLEET=1
// (scripts/bench-fleet.sh, called by make bench), alone on the machine.
func BenchmarkFleetLoad(b *testing.B) {
	if os.Getenv("PAPSCAN_BENCH_FLEET") == "" {
		b.Skip("PAPSCAN_BENCH_FLEET=1 runs it (scripts/bench-fleet.sh)")
	}
	for _, faults := range []bool{false, true} {
		name := "steady"
		if faults {
			name = "kill_receiver_and_db_conns"
		}
		b.Run(name, func(b *testing.B) {
			var rs []loadResult
			for b.Loop() {
				rs = append(rs, runLoad(b, 200, 20, faults))
			}
			r := rs[len(rs)-1]
			b.ReportMetric(float64(r.results)/r.wall.Seconds(), "results/s")
			b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50_ack_ms")
			b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99_ack_ms")
			b.ReportMetric(float64(r.resends), "resends")
		})
	}
}
