package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifyPathAndAbstract(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	abstract := "@papscan-test-" + filepath.Base(t.TempDir())
	for _, sock := range []string{path, abstract} {
		name := sock
		if name[0] == '@' {
			name = "\x00" + name[1:]
		}
		c := listen(t, name)
		n, err := New(sock)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			send func() error
			want string
		}{
			{n.Ready, "READY=1"},
			{func() error { return n.Status("scanning\nslide 3") }, "STATUS=scanning slide 3"},
			{n.Watchdog, "WATCHDOG=1"},
			{n.Reloading, "RELOADING=1"},
			{n.Stopping, "STOPPING=1"},
		} {
			if err := tc.send(); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, c); got != tc.want {
				t.Errorf("%s: got %q, want %q", sock, got, tc.want)
			}
		}
		n.Close()
	}
}

func TestDisabledAndBad(t *testing.T) {
	n, err := FromEnv(func(string) string { return "" })
	if err != nil || n.Enabled() || n.Ready() != nil || n.Close() != nil {
		t.Errorf("no socket: %v %v", n.Enabled(), err)
	}
	if _, err := New("relative/path"); err == nil {
		t.Error("relative socket accepted")
	}
	n, _ = New(filepath.Join(t.TempDir(), "nobody-listens"))
	if err := n.Ready(); err == nil {
		t.Error("send to a missing socket succeeded")
	}
}

func TestWatchdogInterval(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		env  map[string]string
		d    time.Duration
		ok   bool
		fail bool
	}{
		{map[string]string{}, 0, false, false},
		{map[string]string{"WATCHDOG_USEC": "30000000"}, 30 * time.Second, true, false},
		{map[string]string{"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "42"}, 500 * time.Millisecond, true, false},
		{map[string]string{"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "43"}, 0, false, false},
		{map[string]string{"WATCHDOG_USEC": "soon"}, 0, false, true},
		{map[string]string{"WATCHDOG_USEC": "0"}, 0, false, true},
		{map[string]string{"WATCHDOG_USEC": "1", "WATCHDOG_PID": "x"}, 0, false, true},
	} {
		d, ok, err := WatchdogInterval(env(tc.env), 42)
		if d != tc.d || ok != tc.ok || (err != nil) != tc.fail {
			t.Errorf("%v: got %v %v %v", tc.env, d, ok, err)
		}
	}
}
