package main

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"

	"papscan/agent"
)

// unitSettings reads deploy/papscan.service's [Service] and [Unit] keys
// (the last value of a repeated key wins; DeviceAllow is collected).
func unitSettings(t *testing.T) (map[string]string, []string) {
	t.Helper()
	f, err := os.Open("../../deploy/papscan.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string]string{}
	var devices []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("unit line %q", l)
		}
		if k == "DeviceAllow" {
			devices = append(devices, v)
		}
		kv[k] = v
	}
	return kv, devices
}

// The unit's budgets match the agent's: it must be allowed to finish its
// stop sequence (plus the broker goodbye), and the watchdog period must
// leave the drivers' longest silent wait (a frame timeout, a few seconds)
// well inside half of it.
func TestUnitMatchesTheAgent(t *testing.T) {
	kv, devices := unitSettings(t)
	stop, err := time.ParseDuration(kv["TimeoutStopSec"])
	if err != nil {
		t.Fatalf("TimeoutStopSec %q: %v", kv["TimeoutStopSec"], err)
	}
	if stop < agent.StopBudget+10*time.Second {
		t.Errorf("TimeoutStopSec %s < stop budget %s + 10 s", stop, agent.StopBudget)
	}
	wd, err := time.ParseDuration(kv["WatchdogSec"])
	if err != nil || wd < 20*time.Second {
		t.Errorf("WatchdogSec %q: want at least 20s", kv["WatchdogSec"])
	}
	for k, want := range map[string]string{
		"Type": "notify", "Restart": "on-failure", "ProtectSystem": "strict", "StateDirectory": "papscan",
		"RuntimeDirectory": "papscan", "NoNewPrivileges": "yes", "DevicePolicy": "closed",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "User": "papscan",
	} {
		if kv[k] != want {
			t.Errorf("%s=%q, want %q", k, kv[k], want)
		}
	}
	if kv["StartLimitBurst"] == "" || kv["StartLimitIntervalSec"] == "" {
		t.Error("no start limit")
	}
	if !strings.Contains(kv["ExecStart"], "--socket "+defaultSocket) {
		t.Errorf("ExecStart %q does not serve the default socket %s", kv["ExecStart"], defaultSocket)
	}
	want := map[string]bool{"char-gpiochip rw": true, "char-i2c rw": true, "char-video4linux rw": true}
	for _, d := range devices {
		if !want[d] {
			t.Errorf("unexpected DeviceAllow=%s", d)
		}
		delete(want, d)
	}
	if len(want) > 0 {
		t.Errorf("missing DeviceAllow: %v", want)
	}
}

func TestParseMicrometres(t *testing.T) {
	for in, want := range map[string]float64{"100um": 100, "-250µm": -250, "0.5mm": 500, "-1.25mm": -1250, "+3um": 3} {
		if got, err := parseMicrometres(in); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "100", "mm", "1e9mm", "NaNum", "1..2mm", "5 inches"} {
		if _, err := parseMicrometres(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func FuzzParseMicrometres(f *testing.F) {
	for _, s := range []string{"100um", "-0.5mm", "1e3µm", "NaNmm", "Infum", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseMicrometres(s)
		if err == nil && (v != v || v > 1e9 || v < -1e9) {
			t.Errorf("%q parsed to %v", s, v)
		}
	})
}
