package config

import (
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts is
// valid and survives a Marshal/Parse round trip unchanged.
func FuzzParse(f *testing.F) {
	// Seed with the profiles in their compact marshalled form: the
	// commented files are large, and minimizing large interesting inputs
	// eats most of a short fuzzing run.
	for _, name := range Profiles() {
		c, err := Profile(name)
		if err != nil {
			f.Fatal(err)
		}
		data, err := c.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"machine: {axes: {x: {max_speed: 20mm/s, address: 0x0E}}}",
		"machine: {light: {pin: {chip: gpiochip0, line: 4}}}",
		"machine: {panel: {led_busy: GPIO6}}",
		"machine: {light: {driver: pca9685, pca9685: {address: 0x41, channel: 15, frequency: 1.5 kHz}}}",
		"machine: {axes: {z: {driver: dac, dac: {full_scale: 80um, gain: 2}}, x: {driver: stepdir, stepdir: {step: GPIO4, limit: {chip: gpiochip0, line: 7}}}}}",
		"agent: {robot_id: x, mqtt: {brokers: ['tcp://a:1883', 'mqtts://b:8883'], tls: {ca_file: /ca}}}",
		"scan: {spot_diameter: 1.2 mm, focus_step: 0.5µm}",
		"a: &a {b: *a}",
		"agent: &x\n  <<: *x\n",
		"machine:\n  axes:\n    x: &ax {max_speed: 1mm/s}\n    y: *ax\n",
		"---\n---\n",
		"[1, 2]",
		"machine: {camera: {exposure: 1e400s, pixel_size: 1e-41mm}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid config: %v", err)
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse(out, "marshalled")
		if err != nil {
			t.Fatalf("Parse(Marshal()) failed: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip differs:\n%s", out)
		}
	})
}
