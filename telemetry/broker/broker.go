package broker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is a running embedded MQTT broker.
type Broker struct {
	srv       *mqtt.Server
	ln        *trackedListener
	addr      *net.TCPAddr
	closeOnce sync.Once
	closeErr  error
	stop      func() bool // unregisters the ctx.Done watcher
}

// Start binds addr (a loopback address such as "127.0.0.1:0"; port 0 picks
// a free port) and serves MQTT 3.1.1/5 on it until Close is called or ctx is
// done. Any client connecting from a loopback address is allowed to publish
// and subscribe to anything; connections from other addresses are refused
// (and a non-loopback addr is rejected). Broker logs at Warn and above go to
// logger (nil = discarded).
func Start(ctx context.Context, addr string, logger *slog.Logger) (*Broker, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", addr, err)
	}
	tcpAddr, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !tcpAddr.IP.IsLoopback() {
		_ = ln.Close()
		return nil, fmt.Errorf("broker: %s is not a loopback address; the embedded broker allows everyone and must stay on loopback", ln.Addr())
	}

	var h slog.Handler = slog.DiscardHandler
	if logger != nil {
		h = minLevel{Handler: logger.Handler(), min: slog.LevelWarn}
	}
	srv := mqtt.New(&mqtt.Options{
		Logger: slog.New(h).With("component", "mqtt-broker"),
	})
	if err := srv.AddHook(new(loopbackOnly), nil); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("broker: auth hook: %w", err)
	}
	// Our own net.Listener, so the actual port bound for ":0" is known
	// (ln.Addr) without reading it back from mochi; see trackedListener.
	tl := newTrackedListener("tcp", ln)
	if err := srv.AddListener(tl); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("broker: add listener: %w", err)
	}
	if err := srv.Serve(); err != nil { // non-blocking: starts goroutines
		_ = srv.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	b := &Broker{srv: srv, ln: tl, addr: tcpAddr}
	b.stop = context.AfterFunc(ctx, func() { _ = b.Close() })
	return b, nil
}

// Addr returns the host:port actually bound, e.g. "127.0.0.1:41234".
func (b *Broker) Addr() string { return b.addr.String() }

// URL returns the broker URL for clients, e.g. "tcp://127.0.0.1:41234".
func (b *Broker) URL() string { return "tcp://" + b.addr.String() }

// Server returns the underlying mochi server, for tests that add hooks
// (mqtt.Server.AddHook is safe while running) or disconnect clients.
func (b *Broker) Server() *mqtt.Server { return b.srv }

// Close stops the listener and drops all client connections (mochi sends
// the Will of each client it drops, as for any connection loss). Retained
// messages and sessions are lost: they live only in memory. Close is
// idempotent.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.stop()
		b.ln.shutdown() // before srv.Close: see trackedListener
		b.closeErr = b.srv.Close()
	})
	return b.closeErr
}

// loopbackOnly allows every client connecting from a loopback address full
// access, and refuses everything else.
type loopbackOnly struct {
	mqtt.HookBase
}

func (h *loopbackOnly) ID() string { return "papscan-loopback-only" }

func (h *loopbackOnly) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (h *loopbackOnly) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return isLoopback(cl.Net.Remote)
}

func (h *loopbackOnly) OnACLCheck(cl *mqtt.Client, _ string, _ bool) bool {
	return cl.Net.Inline || isLoopback(cl.Net.Remote)
}

func isLoopback(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}

// minLevel drops records below min before they reach the wrapped handler.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{Handler: m.Handler.WithAttrs(as), min: m.min}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: m.Handler.WithGroup(name), min: m.min}
}
