package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestProfilesValidate(t *testing.T) {
	names := Profiles()
	if !slices.Contains(names, "sim") || !slices.Contains(names, "papscan-r2") {
		t.Fatalf("Profiles() = %v; want sim and papscan-r2", names)
	}
	for _, name := range names {
		c, err := Profile(name)
		if err != nil {
			t.Fatalf("Profile(%q): %v", name, err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("profile %s does not validate:\n%v", name, err)
		}
		if c.Machine.Name != name {
			t.Errorf("profile %s: machine.name = %q", name, c.Machine.Name)
		}
	}
	if !reflect.DeepEqual(Default(), mustProfile(t, "sim")) {
		t.Error("Default() differs from Profile(\"sim\")")
	}
	if _, err := Profile("nope"); err == nil || !strings.Contains(err.Error(), "papscan-r2") {
		t.Errorf("Profile(nope) error = %v; want the list of profiles", err)
	}
	if _, err := Profile("../profiles/sim"); err == nil {
		t.Error("Profile with a path was accepted")
	}
}

func TestProfileR2Hardware(t *testing.T) {
	c := mustProfile(t, "papscan-r2")
	m := c.Machine
	if m.I2CBus != "/dev/i2c-1" || m.Camera.Device != "/dev/video0" ||
		m.Camera.Width != 1920 || m.Camera.Height != 1080 || m.Camera.PixelFormat != "YUYV" ||
		m.Camera.Objective.Magnification != 20 || m.Camera.Objective.NA != 0.4 {
		t.Errorf("r2 machine = %+v", m)
	}
	for i, a := range []Axis{m.Axes.X, m.Axes.Y, m.Axes.Z} {
		if a.TicVariant != "T834" || a.Address != uint16(0x0E+i) {
			t.Errorf("r2 axis %d: variant %s address %#x", i, a.TicVariant, a.Address)
		}
	}
	if m.Panel.ButtonStart.Name != "GPIO17" {
		t.Errorf("r2 button_start = %+v", m.Panel.ButtonStart)
	}
}

func TestSimProfileValues(t *testing.T) {
	c := Default()
	x, z := c.Machine.Axes.X, c.Machine.Axes.Z
	if x.TravelMax != 80*Millimetre || c.Machine.Axes.Y.TravelMax != 30*Millimetre || z.TravelMax != 2*Millimetre {
		t.Errorf("travel: %v %v %v", x.TravelMax, c.Machine.Axes.Y.TravelMax, z.TravelMax)
	}
	if x.MaxSpeed != 40*MillimetrePerSecond || x.Acceleration != 400*MillimetrePerSecond2 ||
		z.MaxSpeed != MillimetrePerSecond || z.Acceleration != 20*MillimetrePerSecond2 {
		t.Errorf("dynamics: %v %v %v %v", x.MaxSpeed, x.Acceleration, z.MaxSpeed, z.Acceleration)
	}
	if c.Machine.Camera.PixelSize != 500*Nanometre || c.Scan.SpotDiameter != 13*Millimetre ||
		c.Agent.RobotID != "sim-01" || c.Sim.Slides != 3 || c.Machine.Loader.Slots != 10 ||
		c.Classify.MinSquamousCells != 5000 || c.Agent.MQTT.Brokers != nil {
		t.Errorf("sim values: %+v", c)
	}
	if c.EffectiveClientID() != "papscan-sim-01" || c.EffectiveTopicPrefix() != "papscan" {
		t.Errorf("effective: %q %q", c.EffectiveClientID(), c.EffectiveTopicPrefix())
	}
	// Default returns independent copies.
	a, b := Default(), Default()
	a.Agent.MQTT.Brokers = append(a.Agent.MQTT.Brokers, "tcp://x:1")
	a.Machine.Name = "changed"
	if b.Machine.Name != "sim" || b.Agent.MQTT.Brokers != nil || Default().Machine.Name != "sim" {
		t.Error("Default() copies share state")
	}
}

// TestProfilesComplete checks that every shipped profile spells out every
// key, so that no hardware profile silently inherits simulator values.
func TestProfilesComplete(t *testing.T) {
	var want []string
	leafPaths(reflect.TypeFor[Config](), "", &want)
	for _, name := range Profiles() {
		data, err := profileFS.ReadFile("profiles/" + name + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		nodePaths(doc.Content[0], "", have)
		for _, p := range want {
			if !have[p] {
				t.Errorf("profile %s does not set %s", name, p)
			}
		}
	}
}

func leafPaths(t reflect.Type, path string, out *[]string) {
	if t.Kind() != reflect.Struct || t == pinType || t == reflect.TypeFor[Objective]() {
		*out = append(*out, path)
		return
	}
	for k, f := range fieldsByKey(t) {
		leafPaths(f.Type, join(path, k), out)
	}
}

func nodePaths(n *yaml.Node, path string, have map[string]bool) {
	have[path] = true
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			nodePaths(n.Content[i+1], join(path, n.Content[i].Value), have)
		}
	}
}

func mustProfile(t *testing.T, name string) *Config {
	t.Helper()
	c, err := Profile(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParsePartialKeepsDefaults(t *testing.T) {
	c, err := Parse([]byte("agent:\n  robot_id: lab-7\nmachine:\n  axes:\n    x:\n      max_speed: 25mm/s\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	d.Agent.RobotID = "lab-7"
	d.Machine.Axes.X.MaxSpeed = 25 * MillimetrePerSecond
	if !reflect.DeepEqual(c, d) {
		t.Errorf("partial parse changed more than the given keys")
	}
	// Null values keep the default too.
	c, err = Parse([]byte("machine:\n  camera:\nscan: ~\n"), "t.yaml")
	if err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("null sections: %v", err)
	}
}

func TestParsePinReplacedWhole(t *testing.T) {
	// The sim default has a name; giving chip+line replaces the whole pin
	// instead of producing "name and chip".
	c, err := Parse([]byte("machine:\n  light:\n    pin: {chip: gpiochip0, line: 18}\n  panel:\n    led_ready: GPIO5\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Machine.Light.Pin; got != (Pin{Chip: "gpiochip0", Line: 18}) {
		t.Errorf("light pin = %+v", got)
	}
	if got := c.Machine.Panel.LEDReady; got != (Pin{Name: "GPIO5"}) {
		t.Errorf("led_ready = %+v", got)
	}
}

func TestParseStructureErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"empty", "", []string{"s.yaml", "empty configuration"}},
		{"blank", "  \n\n", []string{"empty configuration"}},
		{"comments only", "# nothing\n", []string{"empty configuration"}},
		{"null document", "---\n~\n", []string{"empty configuration"}},
		{"two documents", "agent: {robot_id: a}\n---\nagent: {robot_id: b}\n", []string{"s.yaml:2", "more than one YAML document"}},
		{"list", "- machine\n", []string{"top level must be a mapping", "got a list"}},
		{"scalar", "hello\n", []string{"top level must be a mapping", `got "hello"`}},
		{"syntax", "machine: [\n", []string{"s.yaml", "yaml:"}},
		{"tab indent", "machine:\n\tname: x\n", []string{"s.yaml", "yaml:"}},
		{"unknown top", "machin:\n  name: x\n", []string{`s.yaml:1: machin: unknown key; did you mean "machine"? known keys here: agent, classify, machine, scan, sim`}},
		{"unknown nested", "machine:\n  axes:\n    x:\n      max_sped: 20mm/s\n", []string{"s.yaml:4: machine.axes.x.max_sped: unknown key", "max_speed"}},
		{"unknown pin key", "machine:\n  light:\n    pin:\n      nmae: GPIO4\n", []string{"s.yaml:4: machine.light.pin.nmae: unknown key"}},
		{"unknown objective key", "machine:\n  camera:\n    objective:\n      zoom: 3\n", []string{"machine.camera.objective.zoom: unknown key"}},
		{"axis w", "machine:\n  axes:\n    w: {}\n", []string{"machine.axes.w: unknown key; known keys here: x, y, z"}},
		{"duplicate", "agent:\n  robot_id: a\n  robot_id: b\n", []string{"s.yaml:3: agent.robot_id: duplicate key (first at line 2)"}},
		{"section not mapping", "machine: 3\n", []string{"machine: want a mapping with keys", `got "3"`}},
		{"int wanted", "machine:\n  camera:\n    width: wide\n", []string{"s.yaml:3: machine.camera.width: want an integer, got \"wide\""}},
		{"float into int", "machine:\n  camera:\n    width: 1280.5\n", []string{"machine.camera.width: want an integer"}},
		{"address range", "machine:\n  axes:\n    x:\n      address: 70000\n", []string{"machine.axes.x.address: want an integer in [0, 65535]"}},
		{"negative address", "machine:\n  axes:\n    x:\n      address: -1\n", []string{"machine.axes.x.address: want an integer in [0, 65535]"}},
		{"octal trap", "machine:\n  axes:\n    x:\n      address: 016\n", []string{"machine.axes.x.address: ambiguous leading zero in \"016\""}},
		{"number wanted", "machine:\n  light:\n    brightness: bright\n", []string{"machine.light.brightness: want a number"}},
		{"bool wanted", "machine:\n  panel:\n    led_busy: {name: GPIO6, active_low: maybe}\n", []string{"machine.panel.led_busy.active_low: want true or false"}},
		{"string wanted", "agent:\n  robot_id: {a: b}\n", []string{"agent.robot_id: want a string, got a mapping"}},
		{"list wanted", "agent:\n  mqtt:\n    brokers: tcp://a:1883\n", []string{"agent.mqtt.brokers: want a list of a string"}},
		{"bad speed", "machine:\n  axes:\n    x:\n      max_speed: fast\n", []string{`s.yaml:4: machine.axes.x.max_speed: want a speed like "20mm/s", got "fast"`}},
		{"speed as mapping", "machine:\n  axes:\n    x:\n      max_speed: {v: 1}\n", []string{`machine.axes.x.max_speed: want a speed like "20mm/s", got a mapping`}},
		{"bad distance", "scan:\n  spot_diameter: 13\n", []string{`scan.spot_diameter: want a distance like "13mm", got "13" (missing unit)`}},
		{"bad accel", "machine:\n  axes:\n    z:\n      acceleration: 20mm/s\n", []string{`machine.axes.z.acceleration: want an acceleration like "200mm/s^2"`}},
		{"bad current", "machine:\n  axes:\n    y:\n      current_limit: 800\n", []string{`machine.axes.y.current_limit: want a current like "800mA"`}},
		{"bad duration", "machine:\n  panel:\n    debounce: 20\n", []string{`machine.panel.debounce: want a duration like "15ms", got "20"`}},
		{"pin list", "machine:\n  light:\n    pin: [1]\n", []string{"machine.light.pin: want a mapping"}},
		{"all problems at once", "machin: 1\nagent:\n  robot_idd: x\nscan:\n  focus_step: 3\n", []string{"machin: unknown", "agent.robot_idd: unknown", "scan.focus_step: want a distance"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), "s.yaml")
			if err == nil {
				t.Fatalf("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseAcceptedForms(t *testing.T) {
	in := `
machine:
  axes:
    x: {address: 0x1A, travel_min: "-1mm", max_speed: 20 mm/s, acceleration: 0.2m/s2}
    y: {address: 27, backlash: 0}
  camera: {pixel_size: 0.5µm, exposure: 2 ms}
base: &b
  robot_id: merged-01
`
	// "base" is not a key; use merge keys inside a known section instead.
	in = strings.Replace(in, "base: &b\n  robot_id: merged-01\n", "agent:\n  <<: {robot_id: merged-01}\n", 1)
	c, err := Parse([]byte(in), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	x, y := c.Machine.Axes.X, c.Machine.Axes.Y
	if x.Address != 0x1A || y.Address != 27 || x.TravelMin != -Millimetre ||
		x.MaxSpeed != 20*MillimetrePerSecond || x.Acceleration != 200*MillimetrePerSecond2 ||
		y.Backlash != 0 || c.Machine.Camera.PixelSize != 500*Nanometre ||
		c.Machine.Camera.Exposure.D().Milliseconds() != 2 || c.Agent.RobotID != "merged-01" {
		t.Errorf("parsed %+v %+v %+v %q", x, y, c.Machine.Camera, c.Agent.RobotID)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("agent:\n  robot_id: bench-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil || c.Agent.RobotID != "bench-2" {
		t.Fatalf("Load: %v %v", c, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("machine:\n  camera:\n    width: 100000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if err == nil || !strings.Contains(err.Error(), bad+":3: machine.camera.width: must be in [64, 8192], got 100000") {
		t.Errorf("Load(bad) = %v", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Source != bad || len(ve.Problems) != 1 || ve.Problems[0].Path != "machine.camera.width" {
		t.Errorf("Load(bad) error is not the expected *ValidationError: %#v", err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("#"+strings.Repeat("x", MaxConfigSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) = %v", err)
	}
}

func TestParseOnto(t *testing.T) {
	r2 := mustProfile(t, "papscan-r2")
	c, err := ParseOnto(r2, []byte("agent:\n  robot_id: r2-017\n"), "site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := r2.Clone()
	want.Agent.RobotID = "r2-017"
	if !reflect.DeepEqual(c, want) {
		t.Error("ParseOnto did not keep the base")
	}
	if c, err := ParseOnto(nil, []byte("sim: {seed: 7}"), ""); err != nil || c.Sim.Seed != 7 {
		t.Errorf("ParseOnto(nil) = %v, %v", c, err)
	}
	if r2.Agent.RobotID != "r2-unset" {
		t.Error("ParseOnto modified its base")
	}
}

func TestRoundTrip(t *testing.T) {
	var cfgs []*Config
	for _, n := range Profiles() {
		cfgs = append(cfgs, mustProfile(t, n))
	}
	odd := Default()
	odd.Machine.Axes.X.TravelMin = -1234567 * Nanometre
	odd.Machine.Axes.X.Backlash = 1
	odd.Machine.Axes.Y.CurrentLimit = 1234567 * 1 // nanoamperes
	odd.Machine.Axes.Z.Acceleration = 123456789
	odd.Machine.Camera.PixelSize = 333 * Nanometre
	odd.Machine.Camera.FrameRate = 29.97
	odd.Machine.Camera.Gain = 1.0 / 3
	odd.Machine.Light.Pin = Pin{Chip: "gpiochip0", Line: 0}
	odd.Machine.Panel.ButtonAck = Pin{Chip: "/dev/gpiochip1", Line: 5, ActiveLow: true, Pull: "none"}
	odd.Agent.MQTT.Brokers = []string{"tcp://10.0.0.1:1883", "ws://[::1]:9001/mqtt"}
	odd.Agent.MQTT.ClientID = "robot: with-colon"[7:]
	odd.Agent.MQTT.Username = "yes" // a YAML 1.1 boolean spelling
	odd.Agent.RobotID = "0x10"
	odd.Sim.DataDir = "/data/with: colon"
	odd.Sim.Seed = -1 << 63
	if err := odd.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	cfgs = append(cfgs, odd)
	for i, c := range cfgs {
		data, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(data, "marshalled")
		if err != nil {
			t.Fatalf("config %d: Parse(Marshal()) failed: %v\n%s", i, err, data)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("config %d: round trip differs:\n got %+v\nwant %+v\n%s", i, back, c, data)
		}
	}
	data, _ := Default().Marshal()
	for _, w := range []string{"max_speed: 40mm/s", "address: 0x0E", "address: 0x40", "frequency: 1kHz", "acceleration: 400mm/s^2", "current_limit: 800mA", "settle: 10ms", "pixel_size: 500nm"} {
		if !strings.Contains(string(data), w) {
			t.Errorf("Marshal output lacks %q", w)
		}
	}
}

// TestParseReportsEveryProblem: a file with an unknown (misspelt) key, a
// value of the wrong type and a value out of range gets all three
// problems, one line each with its line number, in file order, and the
// misspelt key gets a suggestion.
func TestParseReportsEveryProblem(t *testing.T) {
	in := "machine:\n" +
		"  axes:\n" +
		"    x:\n" +
		"      max_sped: 20mm/s\n" + // line 4: misspelt
		"      max_speed: 500mm/s\n" + // line 5: out of range
		"  camera:\n" +
		"    width: wide\n" // line 7: wrong type
	_, err := Parse([]byte(in), "s.yaml")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a *ValidationError", err)
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		`s.yaml:4: machine.axes.x.max_sped: unknown key; did you mean "max_speed"?`,
		"s.yaml:5: machine.axes.x.max_speed: must be in",
		"s.yaml:7: machine.camera.width: want an integer",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i+1, lines[i], w)
		}
	}
}

func TestSuggestKey(t *testing.T) {
	known := []string{"acceleration", "address", "max_speed", "travel_max", "travel_min"}
	for _, tc := range []struct{ in, want string }{
		{"max_sped", "max_speed"},
		{"maxspeed", "max_speed"},
		{"adress", "address"},
		{"travel_mx", "travel_max"},
		{"colour", ""},
		{"w", ""},
		{"x", ""},
	} {
		if got := suggestKey(tc.in, known); got != tc.want {
			t.Errorf("suggestKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
