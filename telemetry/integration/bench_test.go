package integration_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/internal/mqtttest"
	"papscan/telemetry/outbox"
)

// BenchmarkDurableCommit: results committed to the outbox per second
// (bbolt, fsync on every commit) with a 2 KiB body.
func BenchmarkDurableCommit(b *testing.B) {
	ob, err := outbox.Open(filepath.Join(b.TempDir(), "outbox.db"), outbox.Options{MinFreeBytes: -1, Logger: logger()})
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	body := []byte(fmt.Sprintf(`{"pad":%q}`, make([]byte, 0, 2048)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		if _, err := ob.PutResult("S", telemetry.NewID(), body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "results/s")
}

// BenchmarkPublishToAck: one result at a time through real Mosquitto on
// loopback to the reference fleet receiver (which commits it, fsync) and
// back: commit -> publish -> fleet commit -> ack -> removed from the
// outbox. Reports p50/p99 of that latency and the end-to-end rate.
func BenchmarkPublishToAck(b *testing.B) {
	if mqtttest.Binary() == "" {
		b.Skip("mosquitto not installed")
	}
	m := mqtttest.StartMosquitto(b, nil)
	startFleet(b, []string{m.URL}, nil)
	acked := make(chan string, 1)
	r := startRobot(b, b.TempDir(), []string{m.URL}, "robot-bench", nil)
	r.stop()
	// Re-open with an OnAcked hook.
	ob, err := outbox.Open(filepath.Join(b.TempDir(), "outbox.db"), outbox.Options{MinFreeBytes: -1, Logger: logger()})
	if err != nil {
		b.Fatal(err)
	}
	rb := &robot{ob: ob, done: make(chan struct{})}
	rb.snd = outbox.NewSender(ob, outbox.SenderOptions{Logger: logger(), OnAcked: func(ids []string) {
		for _, id := range ids {
			acked <- id
		}
	}})
	startSender(b, rb, m.URL)
	var lat []time.Duration
	var mu sync.Mutex
	start := time.Now()
	for b.Loop() {
		id := telemetry.NewID()
		t0 := time.Now()
		if _, err := ob.PutResult("S-bench", id, []byte(`{"verdict":"NILM"}`)); err != nil {
			b.Fatal(err)
		}
		if got := <-acked; got != id {
			b.Fatalf("ack for %s, want %s", got, id)
		}
		mu.Lock()
		lat = append(lat, time.Since(t0))
		mu.Unlock()
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "acked-results/s")
}

// BenchmarkDeliveredPipelined: results committed back to back while the
// sender streams them (window 64) through Mosquitto to the fleet; the
// clock stops when the fleet's acks emptied the outbox: durable
// end-to-end results per second.
func BenchmarkDeliveredPipelined(b *testing.B) {
	if mqtttest.Binary() == "" {
		b.Skip("mosquitto not installed")
	}
	m := mqtttest.StartMosquitto(b, nil)
	startFleet(b, []string{m.URL}, nil)
	r := startRobot(b, b.TempDir(), []string{m.URL}, "robot-pipe", nil)
	start := time.Now()
	for b.Loop() {
		if _, err := r.ob.PutResult("S-pipe", telemetry.NewID(), []byte(`{"verdict":"NILM"}`)); err != nil {
			b.Fatal(err)
		}
	}
	if !waitDepth0(r.ob, time.Minute) {
		b.Fatalf("outbox still holds %d", r.ob.Depth())
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "acked-results/s")
}
