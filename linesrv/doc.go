// Package linesrv serves a one-request-per-connection line protocol (the
// agent's status socket: one JSON request line in, one response line out)
// with every bound an unauthenticated or careless local client needs:
//
//   - a request line is at most Options.MaxLine bytes, read through a
//     fixed buffer (a client that sends gigabytes without a newline costs
//     one line's worth of memory and gets a refusal);
//   - the request must arrive within ReadTimeout and the answer leave
//     within WriteTimeout; the handler's context ends after
//     HandlerTimeout;
//   - at most MaxConns connections are served at once: beyond that a
//     connection is answered "busy" and closed at once, so idle clients
//     cannot exhaust the process's file descriptors;
//   - the accept loop survives accept errors (EMFILE, ENFILE,
//     ECONNABORTED, ...) with a bounded back-off, and returns only when
//     the listener is closed or ctx is done.
//
// Use:
//
//	err := linesrv.Serve(ctx, ln, linesrv.Options{Refuse: func(why string) []byte {
//		b, _ := json.Marshal(Response{Error: why})
//		return b
//	}}, func(ctx context.Context, line []byte) []byte { ... })
package linesrv
