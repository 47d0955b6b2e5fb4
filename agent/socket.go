package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"papscan/linesrv"
)

// Request is one command on the status socket: a JSON object on one line.
type Request struct {
	// Cmd: status, selftest, jog, home, park, press (socket); start,
	// pause, resume, abort, reload (also fleet commands).
	Cmd    string  `json:"cmd"`
	Axis   string  `json:"axis,omitempty"`   // jog: x, y or z
	UM     float64 `json:"um,omitempty"`     // jog: distance in µm, signed
	Button string  `json:"button,omitempty"` // press (simulated robot)
	Long   bool    `json:"long,omitempty"`   // press
	// Magazine names the magazine to start ("" = the agent's naming).
	Magazine string `json:"magazine,omitempty"`
	// Reason of an abort (logged).
	Reason string `json:"reason,omitempty"`
}

// Response is the agent's answer: one JSON object on one line.
type Response struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Code says why a request was refused: CodeBusy, CodeInvalidState,
	// CodeBadRequest ("" otherwise).
	Code   string  `json:"code,omitempty"`
	Status *Status `json:"status,omitempty"`
}

type request struct {
	Request
	reply chan<- Response
}

// jobWait bounds how long a socket client waits for a job it asked for.
const jobWait = 5 * time.Minute

type server struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// serve listens on path (a stale socket from a dead agent is replaced) and
// answers requests until close. The socket is unauthenticated local input:
// linesrv bounds it (one line of at most 64 KiB, read and write deadlines,
// at most 32 connections, an accept loop that outlives descriptor
// exhaustion).
func (a *Agent) serve(path string) (*server, error) {
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("status socket %s: another agent is running", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	// Group members (service engineers) may talk to the agent.
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status socket: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, done: make(chan struct{})}
	opts := linesrv.Options{
		HandlerTimeout: jobWait,
		WriteTimeout:   10 * time.Second,
		Refuse: func(why string) []byte {
			b, _ := json.Marshal(Response{Error: why, Code: CodeBadRequest})
			return b
		},
		Logger: a.log,
	}
	go func() {
		defer close(s.done)
		_ = linesrv.Serve(ctx, ln, opts, a.handleLine)
	}()
	return s, nil
}

func (s *server) close() {
	s.cancel()
	<-s.done
}

// handleLine answers one request line of the status socket.
func (a *Agent) handleLine(ctx context.Context, line []byte) []byte {
	var req Request
	var resp Response
	if err := json.Unmarshal(line, &req); err != nil {
		resp = Response{Error: "bad request: " + err.Error(), Code: CodeBadRequest}
	} else {
		resp = a.Do(ctx, req)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(Response{Error: "answer: " + err.Error()})
	}
	return b
}

// ErrNoAgent means nothing listens on the status socket.
var ErrNoAgent = errors.New("no agent running")

// Query sends req to the agent on socket and returns its response.
func Query(ctx context.Context, socket string, req Request) (Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return Response{}, fmt.Errorf("%w (socket %s): %v", ErrNoAgent, socket, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("agent answer: %w", err)
	}
	return resp, nil
}

// Do runs a request as the socket would (status, selftest, jog, home,
// park, press) and returns the answer; for fleet commands once they are
// verified. It waits for a machine job until it ends or ctx does.
func (a *Agent) Do(ctx context.Context, req Request) Response {
	if req.Cmd == "status" {
		st := a.Status()
		return Response{OK: true, Status: &st}
	}
	reply := make(chan Response, 1)
	select {
	case a.reqs <- request{req, reply}:
	case <-a.stopping:
		return Response{Error: "agent stopping"}
	case <-ctx.Done():
		return Response{Error: "agent busy: " + ctx.Err().Error()}
	}
	select {
	case resp := <-reply:
		return resp
	case <-ctx.Done():
		return Response{Error: "no answer: " + ctx.Err().Error()}
	}
}
