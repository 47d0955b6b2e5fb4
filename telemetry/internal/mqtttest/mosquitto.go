// Package mqtttest starts real Mosquitto brokers, a fault-injecting TCP
// proxy and throw-away TLS certificates for papscan's telemetry tests and
// benchmarks. It is test support only.
package mqtttest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Logf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}

var _ TB = (testing.TB)(nil)

// Binary returns the mosquitto binary, or "" when it is not installed.
func Binary() string {
	for _, p := range []string{"mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if b, err := exec.LookPath(p); err == nil {
			return b
		}
	}
	return ""
}

// RequireMosquitto skips the test when mosquitto is absent locally and
// fails it in CI (CI set), where scripts/deps.sh installs it.
func RequireMosquitto(t TB) string {
	t.Helper()
	b := Binary()
	if b == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("mosquitto not installed in CI: scripts/deps.sh installs the Debian package mosquitto (scripts/deps.txt)")
		}
		t.Skipf("mosquitto not installed (Debian package mosquitto; scripts/deps.sh installs it): skipping the real-broker test")
	}
	return b
}

// TLSFiles configures a TLS listener: the broker's CA (verifying client
// certificates), certificate and key.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
	RequireClientCert         bool
	// Extra configuration lines for the listener (e.g. use_identity_as_username, acl_file).
	Extra string
}

// Mosquitto is a running broker on a loopback port.
type Mosquitto struct {
	t    TB
	bin  string
	conf string
	Port int
	URL  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartMosquitto writes a configuration (one listener on 127.0.0.1, no
// persistence, anonymous access, generous queues) and starts mosquitto.
// With tlsf, the listener speaks TLS. The broker is killed at cleanup.
func StartMosquitto(t TB, tlsf *TLSFiles) *Mosquitto {
	t.Helper()
	bin := RequireMosquitto(t)
	dir := t.TempDir()
	port := FreePort(t)
	var c strings.Builder
	fmt.Fprintf(&c, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", port)
	c.WriteString("max_queued_messages 100000\nmax_inflight_messages 100\nset_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\n")
	if os.Geteuid() == 0 {
		// mosquitto started as root drops to user "mosquitto", which
		// could not read the test's files.
		if u, err := user.Current(); err == nil {
			fmt.Fprintf(&c, "user %s\n", u.Username)
		}
	}
	scheme := "tcp"
	if tlsf != nil {
		scheme = "ssl"
		fmt.Fprintf(&c, "cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate %v\ntls_version tlsv1.2\n",
			tlsf.CAFile, tlsf.CertFile, tlsf.KeyFile, tlsf.RequireClientCert)
		c.WriteString(tlsf.Extra)
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(c.String()), 0o600); err != nil {
		t.Fatalf("mosquitto config: %v", err)
	}
	m := &Mosquitto{t: t, bin: bin, conf: conf, Port: port, URL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)}
	m.Start()
	t.Cleanup(m.Kill)
	return m
}

// Start (re)starts the broker on its port and waits until it listens.
// It must run on the test's goroutine; elsewhere use Restart.
func (m *Mosquitto) Start() {
	m.t.Helper()
	if err := m.Restart(); err != nil {
		m.t.Fatalf("%v", err)
	}
}

// Restart (re)starts the broker and waits until it listens; safe from any
// goroutine.
func (m *Mosquitto) Restart() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return nil
	}
	for attempt := 0; ; attempt++ {
		cmd := exec.Command(m.bin, "-c", m.conf)
		m.log = &bytes.Buffer{}
		cmd.Stderr = m.log
		cmd.Stdout = m.log
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start mosquitto: %w", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.Port), 100*time.Millisecond)
			if err == nil {
				c.Close()
				m.cmd, m.done = cmd, done
				return nil
			}
			select {
			case <-done:
				deadline = time.Time{} // exited (port still in TIME_WAIT/in use): retry
			case <-time.After(10 * time.Millisecond):
			}
		}
		_ = cmd.Process.Kill()
		<-done
		if attempt >= 20 {
			return fmt.Errorf("mosquitto did not start on port %d: %s", m.Port, m.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill SIGKILLs the broker (no clean shutdown, nothing saved) and waits
// for it to exit.
func (m *Mosquitto) Kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
	m.cmd = nil
}

// Addr is "127.0.0.1:port".
func (m *Mosquitto) Addr() string { return fmt.Sprintf("127.0.0.1:%d", m.Port) }

// StartMosquittoConf starts mosquitto with the configuration text conf
// (which must make it listen on 127.0.0.1:port, e.g. from FreePort) and
// kills it at cleanup. When the test runs as root a "user" line for the
// current user is added (mosquitto would otherwise drop to user
// "mosquitto", which cannot read the test's files), and log lines go to
// stderr.
func StartMosquittoConf(t TB, conf string, port int) *Mosquitto {
	t.Helper()
	bin := RequireMosquitto(t)
	if os.Geteuid() == 0 {
		if u, err := user.Current(); err == nil {
			conf = "user " + u.Username + "\n" + conf
		}
	}
	conf = "log_dest stderr\nlog_type error\nlog_type warning\n" + conf
	path := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatalf("mosquitto config: %v", err)
	}
	m := &Mosquitto{t: t, bin: bin, conf: path, Port: port, URL: fmt.Sprintf("ssl://127.0.0.1:%d", port)}
	m.Start()
	t.Cleanup(m.Kill)
	return m
}
