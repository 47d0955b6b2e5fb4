package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/telemetry/broker"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func TestUsageAndHelp(t *testing.T) {
	if code, _, _ := runCmd(t); code != exitUsage {
		t.Errorf("no command: exit %d, want %d", code, exitUsage)
	}
	if code, _, stderr := runCmd(t, "frobnicate"); code != exitUsage || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr)
	}
	for _, c := range []string{"sim", "run", "config", "version"} {
		code, _, stderr := runCmd(t, c, "--help")
		if code != exitOK || !strings.Contains(stderr, "Usage: papscan "+c) {
			t.Errorf("%s --help: exit %d, stderr %q", c, code, stderr)
		}
	}
	if code, _, _ := runCmd(t, "sim", "--no-such-flag"); code != exitUsage {
		t.Errorf("bad flag: exit %d, want %d", code, exitUsage)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd(t, "version")
	if code != exitOK || !strings.Contains(out, "papscan ") || !strings.Contains(out, "model mlp-") || !strings.Contains(out, "sha256:") {
		t.Errorf("version: exit %d, output %q", code, out)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	_, shown, _ := runCmd(t, "config", "show", "sim")
	if err := os.WriteFile(good, []byte(shown), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCmd(t, "config", "check", good); code != exitOK || !strings.Contains(out, "ok") {
		t.Errorf("valid config: exit %d, %q %q", code, out, stderr)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(shown, "max_speed: 40mm/s", "max_speed: 500mm/s", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, "config", "check", bad)
	if code != exitConfig || !strings.Contains(stderr, "machine.axes.x.max_speed") {
		t.Errorf("invalid config: exit %d (want %d), stderr %q", code, exitConfig, stderr)
	}
	if code, _, _ := runCmd(t, "config", "check", filepath.Join(dir, "missing.yaml")); code != exitConfig {
		t.Errorf("missing file: exit %d, want %d", code, exitConfig)
	}
	if code, out, _ := runCmd(t, "config", "profiles"); code != exitOK || !strings.Contains(out, "papscan-r2") {
		t.Errorf("profiles: exit %d, %q", code, out)
	}
}

// TestSimEndToEnd runs `papscan sim` on two small synthetic slides against a
// broker with a fleet-side subscriber: each slide's result must arrive over
// MQTT and be stored in the state directory.
func TestSimEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end simulated run: skipped with -short (minutes under qemu-user)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := broker.Start(ctx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan []byte, 10)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("fleet-test"))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("papscan/+/result/#", 1, func(_ paho.Client, m paho.Message) { got <- m.Payload() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	dir := t.TempDir()
	_, shown, _ := runCmd(t, "config", "show", "sim")
	shown = strings.Replace(shown, "spot_diameter: 13mm", "spot_diameter: 2mm", 1)
	shown = strings.Replace(shown, "min_squamous_cells: 5000", "min_squamous_cells: 100", 1)
	cfgPath := filepath.Join(dir, "sim.yaml")
	if err := os.WriteFile(cfgPath, []byte(shown), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCmd(t, "sim", "--config", cfgPath, "--slides", "2", "--synthetic", "--json",
		"--broker", b.URL(), "--state-dir", filepath.Join(dir, "state"), "--log-level", "warn")
	if code != exitOK {
		t.Fatalf("sim exit %d\nstderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines on stdout, got %d:\n%s", len(lines), out)
	}
	results := map[string]bool{}
	for _, l := range lines {
		var r struct {
			SlideID  string `json:"slide_id"`
			ResultID string `json:"result_id"`
			Verdict  string `json:"verdict"`
			Tiles    int    `json:"tiles"`
			Analysed int    `json:"tiles_analysed"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if r.Verdict == "" || r.Verdict == "INCOMPLETE" || r.Tiles == 0 || r.Analysed != r.Tiles {
			t.Errorf("slide %s: verdict %s, %d/%d tiles", r.SlideID, r.Verdict, r.Analysed, r.Tiles)
		}
		for _, f := range []string{"result.json", "overview.png", "gallery.png"} {
			p := filepath.Join(dir, "state", "slides", r.SlideID, r.ResultID, f)
			if _, err := os.Stat(p); err != nil && !(f == "gallery.png" && os.IsNotExist(err)) {
				t.Errorf("missing %s: %v", p, err)
			}
		}
		results[r.ResultID] = true
	}
	for len(results) > 0 {
		select {
		case p := <-got:
			var env struct {
				Kind     string `json:"kind"`
				RobotID  string `json:"robot_id"`
				ResultID string `json:"result_id"`
				Body     struct {
					Verdict string `json:"verdict"`
					Result  struct {
						ModelVersion string `json:"model_version"`
						ModelSHA256  string `json:"model_sha256"`
					} `json:"result"`
				} `json:"body"`
			}
			if err := json.Unmarshal(p, &env); err != nil {
				t.Fatalf("result message: %v: %s", err, p)
			}
			if env.Kind != "result" || env.RobotID != "sim-01" || env.Body.Verdict == "" || env.Body.Result.ModelSHA256 == "" {
				t.Errorf("result message lacks fields: %s", p)
			}
			delete(results, env.ResultID)
		case <-time.After(30 * time.Second): // counted from the sim's end: a loaded CI machine scans slowly
			t.Fatalf("%d results never arrived at the subscriber", len(results))
		}
	}
}

// TestRunIsTheAgentAlias: `papscan run` is the agent on the real hardware
// (same flags); it refuses --sim and needs --config.
func TestRunIsTheAgentAlias(t *testing.T) {
	if code, _, stderr := runCmd(t, "run", "--sim"); code != exitUsage || !strings.Contains(stderr, "agent --sim") {
		t.Errorf("run --sim: exit %d %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "run"); code != exitUsage || !strings.Contains(stderr, "papscan run: --config FILE is required") {
		t.Errorf("run without --config: exit %d %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "run", "--help"); code != exitOK || !strings.Contains(stderr, "alias of `papscan agent`") || !strings.Contains(stderr, "-state-dir") {
		t.Errorf("run --help: exit %d %q", code, stderr)
	}
}

// TestSimRefusesNoSlides: `sim --slides 0` is a usage error, not a silent
// run of the profile's slides.
func TestSimRefusesNoSlides(t *testing.T) {
	for _, n := range []string{"0", "-1"} {
		if code, _, stderr := runCmd(t, "sim", "--slides", n); code != exitUsage || !strings.Contains(stderr, "--slides") {
			t.Errorf("sim --slides %s: exit %d %q, want %d naming --slides", n, code, stderr, exitUsage)
		}
	}
}

// cancelOn is a writer that cancels when what it was written contains
// marker.
type cancelOn struct {
	syncBuffer
	marker string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	n, err := c.syncBuffer.Write(p)
	if strings.Contains(c.String(), c.marker) {
		c.cancel()
	}
	return n, err
}

// TestSimInterrupted: Ctrl-C during a scan exits 130 saying "interrupted",
// and the interrupted slide's INCOMPLETE result is still delivered to the
// fleet (the embedded broker and receiver outlive the interrupt).
func TestSimInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("simulated run: skipped with -short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	var out bytes.Buffer
	errw := &cancelOn{marker: " scan    [", cancel: cancel}
	code := dispatch(ctx, env{stdout: &out, stderr: errw}, []string{"sim", "--slides", "1", "--synthetic",
		"--state-dir", filepath.Join(dir, "state"), "--log-level", "warn"})
	stderr := errw.String()
	if code != exitInterrupted || !strings.Contains(stderr, "papscan sim: interrupted") {
		t.Fatalf("exit %d, want %d with \"interrupted\"; stderr:\n%s", code, exitInterrupted, stderr)
	}
	if !strings.Contains(stderr, "outbox empty: the fleet acknowledged every result") {
		t.Errorf("the stored result was not delivered before the broker stopped:\n%s", stderr)
	}
	if !strings.Contains(out.String(), "INCOMPLETE") {
		t.Errorf("no INCOMPLETE result in the table:\n%s", out.String())
	}
}
