package linesrv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Defaults for zero Options fields.
const (
	DefaultMaxLine        = 64 << 10
	DefaultMaxConns       = 32
	DefaultReadTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultHandlerTimeout = 5 * time.Minute
	maxBackoff            = time.Second
)

// Options bounds a server; zero fields take the defaults above.
type Options struct {
	MaxLine        int
	MaxConns       int
	ReadTimeout    time.Duration
	WriteTimeout   time.Duration
	HandlerTimeout time.Duration
	// Refuse builds the response line (without newline) sent when a
	// request is refused before the handler: "busy" (too many
	// connections), a line too long, a read error. nil: the connection is
	// just closed.
	Refuse func(why string) []byte
	Logger *slog.Logger
}

// Handler answers one request line (without its newline) with one
// response line (a newline is added). ctx ends after HandlerTimeout or
// when Serve's ctx is done.
type Handler func(ctx context.Context, line []byte) []byte

// Serve accepts connections on ln until ctx is done or ln is closed, and
// answers each as the package comment says. It closes ln when ctx is done
// and waits for the connections it serves; it returns ctx.Err() or nil
// after ln was closed.
func Serve(ctx context.Context, ln net.Listener, o Options, h Handler) error {
	if o.MaxLine <= 0 {
		o.MaxLine = DefaultMaxLine
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.HandlerTimeout <= 0 {
		o.HandlerTimeout = DefaultHandlerTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, o.MaxConns)
	backoff := time.Duration(0)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// EMFILE and friends: wait for descriptors to come back
			// rather than give up the socket for good.
			backoff = min(max(2*backoff, 5*time.Millisecond), maxBackoff)
			o.Logger.Warn("status socket: accept failed; retrying", "error", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			continue
		}
		backoff = 0
		select {
		case slots <- struct{}{}:
		default:
			refuse(c, o, "busy: too many connections to the status socket")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			serveConn(ctx, c, o, h)
		}()
	}
}

// refuse answers c with o.Refuse(why), bounded by WriteTimeout, and
// closes it.
func refuse(c net.Conn, o Options, why string) {
	if o.Refuse != nil {
		_ = c.SetWriteDeadline(time.Now().Add(o.WriteTimeout))
		_, _ = c.Write(append(o.Refuse(why), '\n'))
	}
	_ = c.Close()
}

func serveConn(ctx context.Context, c net.Conn, o Options, h Handler) {
	_ = c.SetReadDeadline(time.Now().Add(o.ReadTimeout))
	line, err := readLine(bufio.NewReaderSize(c, 4096), o.MaxLine)
	switch {
	case err == nil:
	case errors.Is(err, errTooLong):
		refuse(c, o, err.Error())
		return
	case errors.Is(err, io.EOF) && len(line) > 0:
		// the client closed its side after a line without newline: serve it
	default:
		_ = c.Close() // closed, or no whole request within ReadTimeout
		return
	}
	hctx, cancel := context.WithTimeout(ctx, o.HandlerTimeout)
	resp := h(hctx, line)
	cancel()
	_ = c.SetWriteDeadline(time.Now().Add(o.WriteTimeout))
	_, _ = c.Write(append(resp, '\n'))
	_ = c.Close()
}

var errTooLong = errors.New("request line too long")

// readLine reads one line (without its newline) of at most max bytes;
// what the client sends beyond max is never buffered. A final line
// without a newline before EOF is returned with io.EOF.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 { // +1: the newline
			return nil, fmt.Errorf("%w: more than %d bytes", errTooLong, max)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return bytes.TrimSuffix(line, []byte("\n")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return line, err
		default:
			return line, err
		}
	}
}
