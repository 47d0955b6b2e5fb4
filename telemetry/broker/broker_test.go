package broker

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestStartAddrURL(t *testing.T) {
	b, err := Start(t.Context(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %q (%v)", b.Addr(), err)
	}
	if b.URL() != "tcp://"+b.Addr() {
		t.Errorf("URL() = %q", b.URL())
	}
	conn, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("broker not listening on %s: %v", b.Addr(), err)
	}
	_ = conn.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestStartRejectsNonLoopback(t *testing.T) {
	b, err := Start(t.Context(), "0.0.0.0:0", nil)
	if err == nil {
		b.Close()
		t.Fatal("Start on 0.0.0.0 succeeded; want loopback-only")
	}
	if !strings.Contains(err.Error(), "loopback") {
		t.Errorf("error %q should explain loopback", err)
	}
}

func TestStartCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Start(ctx, "127.0.0.1:0", nil); err == nil {
		t.Fatal("Start with cancelled ctx succeeded")
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:5000":        true,
		"[::1]:5000":            true,
		"[::ffff:127.0.0.1]:80": true,
		"10.0.0.5:5000":         false,
		"":                      false,
		"garbage":               false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
