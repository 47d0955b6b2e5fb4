package mqtttest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Proxy forwards loopback TCP connections to a target and injects network
// faults: Blackhole (bytes silently vanish, connections stay open, new ones
// are accepted and never answered) and Reset (every connection is closed
// with a TCP RST).
type Proxy struct {
	ln     net.Listener
	target string
	hole   atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy listens on 127.0.0.1:0 and forwards to target.
func NewProxy(t TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's listening address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is "tcp://" + Addr.
func (p *Proxy) URL() string { return "tcp://" + p.Addr() }

// Blackhole starts (true) or ends (false) dropping every byte.
func (p *Proxy) Blackhole(on bool) { p.hole.Store(on) }

// Reset closes every connection with an RST (SO_LINGER 0).
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		delete(p.conns, c)
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.Reset()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if p.hole.Load() { // accepted, never answered
				_, _ = io.Copy(io.Discard, c)
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				return
			}
			p.track(up)
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.pipe(c, up) }()
			p.pipe(up, c)
		}()
	}
}

// pipe copies src to dst, dropping bytes while blackholed.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	defer dst.Close()
	defer src.Close()
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.hole.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
