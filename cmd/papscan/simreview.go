package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	config "papscan/firmware-config"
	fleetcmd "papscan/telemetry/command"
)

// errNoFleetBinary: papscan-fleet is neither beside papscan nor in PATH.
var errNoFleetBinary = errors.New("papscan-fleet not found beside papscan or in PATH")

// fleetChildStart bounds the wait for the fleet side to come up.
const fleetChildStart = 30 * time.Second

// reviewSide is the fleet side the simulator started as a child process
// (`papscan-fleet local`): embedded broker, receiver, SQLite and the
// review station. The robot binary links none of it.
type reviewSide struct {
	BrokerURL      string
	URL            string // review station
	User, Password string // demo login ("" when unknown)
	DB             string
	cmd            *exec.Cmd
	done           chan struct{}
}

// findFleetBinary looks for papscan-fleet beside the running binary
// (bin/ after `make build`), then in PATH.
func findFleetBinary() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "papscan-fleet")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("papscan-fleet"); err == nil {
		return p, nil
	}
	return "", errNoFleetBinary
}

// startReviewSide starts `papscan-fleet local` with its database in
// <state_dir>/fleet, its embedded broker on a free loopback port and its
// receiver signing acks and replay requests with a key made for this run
// (written 0600 beside the database); withAckKey gives the robot
// configuration that trusts it. The review station's demo account is
// created by the child on the first run; its password is kept in
// <state_dir>/fleet/demo-login (0600) for later runs.
func startReviewSide(ctx context.Context, bin string, cfg *config.Config, stderr io.Writer, log *slog.Logger) (*reviewSide, func(*config.Config) *config.Config, error) {
	dir := filepath.Join(cfg.Agent.StateDir, "fleet")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, err
	}
	key, err := fleetcmd.GenerateKey(rand.Reader, "sim-review")
	if err != nil {
		return nil, nil, err
	}
	pemKey, err := fleetcmd.MarshalSigningKey(key)
	if err != nil {
		return nil, nil, err
	}
	keyFile := filepath.Join(dir, "receiver.pem")
	_ = os.Remove(keyFile)
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, "local", "--dir", dir, "--broker-listen", "127.0.0.1:0", "--ack-key", keyFile, "--log-level", "warn")
	cmd.Stderr = stderr
	cmd.SysProcAttr = childAttr()
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", bin, err)
	}
	rs := &reviewSide{cmd: cmd, done: make(chan struct{}), DB: filepath.Join(dir, "fleet.sqlite")}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(outp)
		for sc.Scan() {
			select {
			case lines <- strings.TrimSpace(sc.Text()):
			default: // nobody listens any more: drain
			}
		}
		_ = cmd.Wait()
		close(rs.done)
	}()
	timer := time.NewTimer(fleetChildStart)
	defer timer.Stop()
	var after <-chan time.Time // after the review station's line: the login, if any
	for waiting := true; waiting; {
		select {
		case line := <-lines:
			log.Debug("papscan-fleet", "line", line)
			switch {
			case strings.HasPrefix(line, "papscan-fleet: MQTT broker "):
				if f := strings.Fields(strings.TrimPrefix(line, "papscan-fleet: MQTT broker ")); len(f) > 0 {
					rs.BrokerURL = strings.TrimSuffix(f[0], ",")
				}
			case strings.HasPrefix(line, "review station: "):
				rs.URL = strings.TrimSpace(strings.TrimPrefix(line, "review station: "))
				after = time.After(300 * time.Millisecond)
			case strings.HasPrefix(line, "log in as "):
				// "log in as demo, password XXXX (a supervisor; ...)"
				f := strings.Fields(strings.ReplaceAll(strings.TrimPrefix(line, "log in as "), ",", " "))
				if len(f) >= 3 && f[1] == "password" {
					rs.User, rs.Password = f[0], f[2]
				}
				waiting = rs.URL == ""
			}
		case <-after:
			waiting = false
		case <-rs.done:
			return nil, nil, fmt.Errorf("%s local exited before its review station was up", bin)
		case <-timer.C:
			rs.Stop()
			return nil, nil, fmt.Errorf("%s local: no review station after %s", bin, fleetChildStart)
		case <-ctx.Done():
			rs.Stop()
			return nil, nil, ctx.Err()
		}
	}
	if rs.BrokerURL == "" {
		rs.Stop()
		return nil, nil, fmt.Errorf("%s local did not say where its MQTT broker listens", bin)
	}
	loginFile := filepath.Join(dir, "demo-login")
	if rs.Password != "" {
		_ = os.WriteFile(loginFile, []byte(rs.User+" "+rs.Password+"\n"), 0o600)
	} else if b, err := os.ReadFile(loginFile); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			rs.User, rs.Password = f[0], f[1]
		}
	}
	withAckKey := func(c *config.Config) *config.Config {
		c = c.Clone()
		c.Agent.MQTT.AckKeys = append(c.Agent.MQTT.AckKeys, key.Public().String())
		return c
	}
	return rs, withAckKey, nil
}

// Stop asks the fleet side to stop (SIGTERM) and waits for it, killing it
// after 10 s.
func (rs *reviewSide) Stop() {
	if rs == nil || rs.cmd.Process == nil {
		return
	}
	_ = rs.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-rs.done:
	case <-time.After(10 * time.Second):
		_ = rs.cmd.Process.Kill()
		<-rs.done
	}
}

// printReview tells how to open the review station.
func (rs *reviewSide) printReview(out io.Writer, slides int, serving bool) {
	fmt.Fprintf(out, "\nReview station: %s\n", rs.URL)
	if rs.Password != "" {
		fmt.Fprintf(out, "  log in as %s, password %s\n", rs.User, rs.Password)
	} else {
		fmt.Fprintf(out, "  add an account with: papscan-fleet useradd --db %s --user NAME --role supervisor\n", rs.DB)
	}
	fmt.Fprintf(out, "  the %d slides of this run wait in the worklist with their galleries\n", slides)
	if serving {
		fmt.Fprintf(out, "  (serving until Ctrl-C; later: papscan-fleet serve --db %s)\n", rs.DB)
	} else {
		fmt.Fprintf(out, "  (stopped with the simulator; open it again with: papscan-fleet serve --db %s)\n", rs.DB)
	}
}
