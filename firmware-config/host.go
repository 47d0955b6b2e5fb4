package config

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// CheckHost checks c against this host the way the robot's agent does
// when it starts, so that `papscan config check` refuses what the agent
// would refuse (Validate alone is pure and cannot see files): a real
// robot (not Simulated) needs a broker; agent.state_dir must be a
// directory or creatable as one; the password, TLS and key files must
// exist and hold what they should (a password, PEM certificates, a
// matching key pair, key lines; ack_keys_file at least one key). It
// returns a *ValidationError naming each key, or nil. Run it after
// Validate, on the machine that runs the agent.
func (c *Config) CheckHost() error {
	v := &validator{}
	m := &c.Agent.MQTT
	if !c.Simulated() && len(m.Brokers) == 0 {
		v.add("agent.mqtt.brokers", "the robot's agent needs at least one broker URL (only the simulated machine runs with its embedded broker)")
	}
	checkStateDir(v, c.Agent.StateDir)
	if b, ok := readFile(v, "agent.mqtt.password_file", m.PasswordFile); ok && len(bytes.TrimSpace(b)) == 0 {
		v.add("agent.mqtt.password_file", "%s is empty", m.PasswordFile)
	}
	if b, ok := readFile(v, "agent.mqtt.tls.ca_file", m.TLS.CAFile); ok && !x509.NewCertPool().AppendCertsFromPEM(b) {
		v.add("agent.mqtt.tls.ca_file", "%s holds no PEM certificate", m.TLS.CAFile)
	}
	if m.TLS.CertFile != "" && m.TLS.KeyFile != "" {
		if _, err := tls.LoadX509KeyPair(m.TLS.CertFile, m.TLS.KeyFile); err != nil {
			v.add("agent.mqtt.tls.cert_file", "with key_file: %v", err)
		}
	}
	checkKeyFile(v, "agent.commands.fleet_keys_file", c.Agent.Commands.FleetKeysFile, false)
	checkKeyFile(v, "agent.mqtt.ack_keys_file", m.AckKeysFile, true)
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

// Warnings lists what is valid but unwise: a user name or password file
// used with a plaintext broker URL (tcp://, mqtt://, ws://), which sends
// the password over the network in clear text.
func (c *Config) Warnings() []Problem {
	var out []Problem
	m := &c.Agent.MQTT
	if m.Username == "" && m.PasswordFile == "" {
		return nil
	}
	for i, b := range m.Brokers {
		u, err := url.Parse(b)
		if err != nil || slices.Contains(tlsSchemes, u.Scheme) {
			continue
		}
		out = append(out, Problem{Path: fmt.Sprintf("agent.mqtt.brokers[%d]", i),
			Msg: fmt.Sprintf("plaintext broker %q with username/password_file: the credentials cross the network in clear text; use ssl:// (or mqtts://, wss://) with agent.mqtt.tls", u.Redacted())})
	}
	return out
}

// checkStateDir: the agent creates the state directory (MkdirAll) at
// start; it must be a directory, or its nearest existing ancestor must be.
func checkStateDir(v *validator, dir string) {
	if dir == "" {
		return // Validate says so
	}
	p := filepath.Clean(dir)
	for {
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return
		case err == nil:
			if p == filepath.Clean(dir) {
				v.add("agent.state_dir", "%s is not a directory", dir)
			} else {
				v.add("agent.state_dir", "%s cannot be created: %s is not a directory", dir, p)
			}
			return
		case errors.Is(err, syscall.ENOTDIR):
			// a file on the way: go up to name it
		case !errors.Is(err, fs.ErrNotExist):
			v.add("agent.state_dir", "%v", err)
			return
		}
		parent := filepath.Dir(p)
		if parent == p {
			return
		}
		p = parent
	}
}

// readFile reads the file a key names ("" = not configured).
func readFile(v *validator, key, path string) ([]byte, bool) {
	if path == "" {
		return nil, false
	}
	fi, err := os.Stat(path)
	if err != nil {
		v.add(key, "%v", err)
		return nil, false
	}
	if !fi.Mode().IsRegular() {
		v.add(key, "%s is not a regular file", path)
		return nil, false
	}
	if fi.Size() > 1<<20 {
		v.add(key, "%s is %d bytes, more than 1 MiB", path, fi.Size())
		return nil, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		v.add(key, "%v", err)
		return nil, false
	}
	return b, true
}

// checkKeyFile checks a key file: one "<key_id>:<base64>" per line, '#'
// comments; needOne: it must hold at least one key.
func checkKeyFile(v *validator, key, path string, needOne bool) {
	b, ok := readFile(v, key, path)
	if !ok {
		return
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, enc, okCut := strings.Cut(line, ":")
		if raw, err := base64.StdEncoding.Strict().DecodeString(enc); !okCut || !fleetKeyIDRe.MatchString(id) || err != nil || len(raw) != 32 {
			v.add(key, "%s line %d: want \"<key_id>:<base64 Ed25519 public key>\"", path, n)
			return
		}
		lines = append(lines, line)
	}
	if len(lines) > maxFleetKeys {
		v.add(key, "%s holds %d keys, at most %d", path, len(lines), maxFleetKeys)
	}
	if needOne && len(lines) == 0 {
		v.add(key, "%s holds no key", path)
	}
}
