package telemetry_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/telemetry"
	"papscan/telemetry/broker"
)

// wait bounds every network wait in these tests.
const wait = 10 * time.Second

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func startBroker(t *testing.T) *broker.Broker {
	t.Helper()
	// Not t.Context(): it is cancelled before Cleanup runs, which would
	// stop the broker under clients that are still closing.
	b, err := broker.Start(context.Background(), "127.0.0.1:0", testLogger())
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func dial(t *testing.T, url, robot string, mod func(*telemetry.Options)) *telemetry.Client {
	t.Helper()
	o := telemetry.Options{
		Brokers:        []string{url},
		RobotID:        robot,
		ConnectTimeout: 5 * time.Second,
		PublishTimeout: 5 * time.Second,
		Logger:         testLogger(),
	}
	if mod != nil {
		mod(&o)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	c, err := telemetry.Dial(ctx, o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// sub is a plain paho subscriber.
type sub struct {
	ch   chan paho.Message
	seen map[string]bool // payloads already returned by recv
}

// subscribe connects a plain paho client and subscribes to filter at QoS 1.
func subscribe(t *testing.T, url, filter string) *sub {
	t.Helper()
	ch := make(chan paho.Message, 1000)
	o := paho.NewClientOptions().AddBroker(url).SetClientID("sub-" + telemetry.NewID()).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(wait)
	mc := paho.NewClient(o)
	if tok := mc.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	tok := mc.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		select {
		case ch <- m:
		default:
			t.Errorf("subscriber buffer full")
		}
	})
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	t.Cleanup(func() { mc.Disconnect(100) })
	return &sub{ch: ch, seen: make(map[string]bool)}
}

// recv returns the next message, skipping exact duplicates of messages it
// already returned. QoS 1 is at least once, and mochi can deliver a
// retained message twice to a subscription made just before it was
// published (retained copies are sent after the SUBACK, concurrently with
// live delivery); receivers must deduplicate, and so do these tests.
func recv(t *testing.T, s *sub) (paho.Message, telemetry.Envelope) {
	t.Helper()
	for {
		m, e := recvRaw(t, s)
		if s.seen[string(m.Payload())] {
			continue
		}
		s.seen[string(m.Payload())] = true
		return m, e
	}
}

// recvRaw returns the next message, duplicates included.
func recvRaw(t *testing.T, s *sub) (paho.Message, telemetry.Envelope) {
	t.Helper()
	select {
	case m := <-s.ch:
		var e telemetry.Envelope
		if err := json.Unmarshal(m.Payload(), &e); err != nil {
			t.Fatalf("message on %s is not an envelope: %v: %s", m.Topic(), err, m.Payload())
		}
		return m, e
	case <-time.After(wait):
		t.Fatalf("no message within %v", wait)
		return nil, telemetry.Envelope{}
	}
}

// proxy is a TCP relay that can cut its connections abruptly (as a network
// failure would) and refuse new ones.
type proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	refuse bool
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	return p
}

func (p *proxy) url() string { return "tcp://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			_ = in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
		go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
	}
}

func (p *proxy) setRefuse(v bool) {
	p.mu.Lock()
	p.refuse = v
	p.mu.Unlock()
}

// cut closes every relayed connection without any MQTT DISCONNECT.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}
