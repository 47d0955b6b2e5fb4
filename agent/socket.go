package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
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
	ln   net.Listener
	wg   sync.WaitGroup
	path string
}

// serve listens on path (a stale socket from a dead agent is replaced) and
// answers requests until close.
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
	s := &server{ln: ln, path: path}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				a.handle(c)
			}()
		}
	}()
	return s, nil
}

func (s *server) close() {
	s.ln.Close()
	s.wg.Wait()
}

func (a *Agent) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var req Request
	r := bufio.NewReader(c)
	line, err := r.ReadBytes('\n')
	enc := json.NewEncoder(c)
	if err != nil && len(line) == 0 {
		return
	}
	if err := json.Unmarshal(line, &req); err != nil {
		enc.Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), jobWait)
	defer cancel()
	c.SetDeadline(time.Now().Add(jobWait + 10*time.Second))
	enc.Encode(a.Do(ctx, req))
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
