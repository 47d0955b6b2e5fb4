package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Issue 15, finding 4: a start with magazine "../../etc/x" on the status
// socket latched storage fault 9. Every path now validates the name before
// anything is written; the agent stays ready.
func TestStartRefusesBadMagazineName(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, 2, nil)
		r.wait(t, "ready", state("ready"))
		for _, name := range []string{"../../etc/x", "a/b", ".hidden", strings.Repeat("m", 65)} {
			resp := r.a.Do(context.Background(), Request{Cmd: "start", Magazine: name})
			if resp.OK || resp.Code != CodeBadRequest || !strings.Contains(resp.Error, "magazine") {
				t.Errorf("start %q: %+v, want a bad_request naming the magazine", name, resp)
			}
		}
		if s := r.a.Status(); s.State != "ready" || s.Fault != nil {
			t.Fatalf("after refused starts: state %s fault %+v, want ready without fault", s.State, s.Fault)
		}
		r.stop(t)
	})
}

// Issue 15, findings 3 and 4: the status socket's reader had no limit (a
// 1.5 GB line took the agent to 3 GB) and its accept loop died on the
// first error. A line over the limit is refused with an answer, and the
// socket answers the next client.
func TestSocketRefusesLongLineAndKeepsServing(t *testing.T) {
	r := newRig(t, 2, nil)
	r.wait(t, "ready", state("ready"))
	path := filepath.Join(t.TempDir(), "s.sock")
	srv, err := r.a.serve(path)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()

	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	go func() { // 1 MiB without a newline, more than the 64 KiB limit
		c.Write(bytes.Repeat([]byte{'x'}, 1<<20))
	}()
	line, _ := bufio.NewReader(c).ReadBytes('\n')
	c.Close()
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil || resp.OK || resp.Error == "" {
		t.Fatalf("long line answered %q (%v), want a refusal", line, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Query(ctx, path, Request{Cmd: "status"})
	if err != nil || !st.OK || st.Status == nil || st.Status.State != "ready" {
		t.Fatalf("status after the refused line: %+v %v", st, err)
	}
	r.stop(t)
}
