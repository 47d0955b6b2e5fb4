package linesrv

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func echo(_ context.Context, line []byte) []byte { return append([]byte("echo "), line...) }

func refuseWith(why string) []byte { return []byte("refused: " + why) }

// pipeListener hands out in-memory connections (usable in a synctest
// bubble) and can inject accept errors.
type pipeListener struct {
	conns  chan net.Conn
	errs   chan error
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), errs: make(chan error, 1000), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case err := <-l.errs:
		return nil, err
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}
func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "unix"} }

// dial returns the client end of a new connection to l.
func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

func ask(t *testing.T, c net.Conn, req string) string {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to %q: %v", req, err)
	}
	return strings.TrimSuffix(line, "\n")
}

func serve(t *testing.T, l net.Listener, o Options) (stop func()) {
	t.Helper()
	o.Refuse, o.Logger = refuseWith, quiet()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, o, echo) }()
	return func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	}
}

// TestAcceptErrorsDoNotStopServing (finding 4): the agent's accept loop
// returned on the first error (EMFILE with 20,000 idle connections), so
// the socket never answered again. Serve backs off and goes on.
func TestAcceptErrorsDoNotStopServing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newPipeListener()
		for range 200 {
			l.errs <- &net.OpError{Op: "accept", Err: syscall.EMFILE}
		}
		stop := serve(t, l, Options{})
		defer stop()
		c := l.dial()
		defer c.Close()
		if got := ask(t, c, "status\n"); got != "echo status" {
			t.Fatalf("answer %q", got)
		}
	})
}

// TestConnectionCap (finding 4): at most MaxConns connections are served;
// the next is answered busy at once and closed (its descriptor freed),
// and once one ends, new clients are served again.
func TestConnectionCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newPipeListener()
		stop := serve(t, l, Options{MaxConns: 3})
		defer stop()
		var idle []net.Conn
		for range 3 {
			idle = append(idle, l.dial())
		}
		c := l.dial()
		if got, err := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(got, "refused: busy") {
			t.Fatalf("4th connection: %q %v", got, err)
		}
		c.Close()
		idle[0].Close()
		synctest.Wait()
		c = l.dial()
		defer c.Close()
		if got := ask(t, c, "status\n"); got != "echo status" {
			t.Fatalf("after one idle client left: %q", got)
		}
		for _, c := range idle[1:] {
			c.Close()
		}
	})
}

// TestIdleClientTimesOut (finding 4): a client that connects and sends
// nothing is closed after ReadTimeout, freeing its slot.
func TestIdleClientTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newPipeListener()
		stop := serve(t, l, Options{MaxConns: 1, ReadTimeout: 10 * time.Second})
		defer stop()
		idle := l.dial()
		defer idle.Close()
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if _, err := idle.Read(make([]byte, 1)); err == nil {
			t.Fatal("idle connection still open after the read timeout")
		}
		c := l.dial()
		defer c.Close()
		if got := ask(t, c, "status\n"); got != "echo status" {
			t.Fatalf("after the idle client timed out: %q", got)
		}
	})
}

// TestLineLimit (finding 3, socket part): 1.5 GB without a newline took
// the agent to 3 GB. A line over MaxLine is refused and costs at most a
// line's worth of memory (measured with runtime.MemStats: 64 MiB sent).
func TestLineLimit(t *testing.T) {
	ln, err := net.Listen("unix", t.TempDir()+"/s.sock")
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, ln, Options{MaxLine: 64 << 10})
	defer stop()
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	chunk := []byte(strings.Repeat("x", 1<<20))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	go func() {
		for range 64 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	got, _ := bufio.NewReader(c).ReadString('\n')
	runtime.ReadMemStats(&after)
	if !strings.HasPrefix(got, "refused: request line too long") {
		t.Fatalf("answer %q", got)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("an endless line (up to 64 MiB sent): refused; %d bytes allocated in the process meanwhile", alloc)
	if alloc > 1<<20 {
		t.Fatalf("%d bytes allocated while refusing an endless line", alloc)
	}
}
