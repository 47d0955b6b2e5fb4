package broker

import (
	"log/slog"
	"net"
	"sync"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// trackedListener is a mochi listener over our own net.Listener (so the
// port bound for ":0" is known) that also tracks the goroutines it starts.
//
// Why not listeners.Net: mochi's attachClient calls ClientsWg.Add(1) inside
// the per-connection goroutine, while Server.Close calls ClientsWg.Wait();
// a connection accepted just as the broker closes is a WaitGroup misuse
// the race detector reports. shutdown stops accepting, drops the accepted
// connections and waits for their goroutines before Server.Close runs.
type trackedListener struct {
	id string
	ln net.Listener

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup // serve loop + one per connection
}

var _ listeners.Listener = (*trackedListener)(nil)

func newTrackedListener(id string, ln net.Listener) *trackedListener {
	return &trackedListener{id: id, ln: ln, conns: make(map[net.Conn]struct{})}
}

func (l *trackedListener) ID() string              { return l.id }
func (l *trackedListener) Address() string         { return l.ln.Addr().String() }
func (l *trackedListener) Protocol() string        { return l.ln.Addr().Network() }
func (l *trackedListener) Init(*slog.Logger) error { return nil }

// Serve accepts connections until the listener is closed. mochi runs it in
// its own goroutine.
func (l *trackedListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = conn.Close()
			return
		}
		l.conns[conn] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			// establish returns when the client is gone; its error (EOF,
			// closed connection, protocol error) is routine, not logged.
			_ = establish(l.id, conn)
			l.mu.Lock()
			delete(l.conns, conn)
			l.mu.Unlock()
		}()
	}
}

// shutdown stops accepting, closes every accepted connection (the broker
// then sends those clients' Wills, as for any connection loss) and waits
// for all goroutines started by Serve.
func (l *trackedListener) shutdown() {
	l.mu.Lock()
	l.closed = true
	_ = l.ln.Close()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// Close is called by mochi's Server.Close, after shutdown.
func (l *trackedListener) Close(closeClients listeners.CloseFn) {
	l.shutdown()
	closeClients(l.id)
}
