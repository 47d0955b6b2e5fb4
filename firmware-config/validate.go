package config

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"papscan/hal/ticaxis/ticspec"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Path is the key path in YAML names, e.g. "machine.axes.x.max_speed".
	Path string
	// Msg says what is wrong and what is allowed.
	Msg string
	// Line is the line of the key in the parsed YAML, 0 when unknown (for
	// example when the value is a default, or Validate ran on a Config
	// built in code).
	Line int
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// ValidationError lists every problem found in a configuration.
type ValidationError struct {
	// Source names the input (a file name) when the error comes from Parse.
	Source   string
	Problems []Problem
}

// Error prints one problem per line, like
//
//	machine.axes.x.max_speed: must be in (0, 200mm/s], got 500mm/s
//
// prefixed with "source:line: " when they are known.
func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		switch {
		case e.Source != "" && p.Line > 0:
			fmt.Fprintf(&b, "%s:%d: ", e.Source, p.Line)
		case e.Source != "":
			fmt.Fprintf(&b, "%s: ", e.Source)
		case p.Line > 0:
			fmt.Fprintf(&b, "line %d: ", p.Line)
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// validator accumulates problems.
type validator struct{ problems []Problem }

func (v *validator) add(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// interval describes a range for messages: "(0, 200mm/s]".
func interval[T any](lo, hi T, loOpen, hiOpen bool, f func(T) string) string {
	l, r := "[", "]"
	if loOpen {
		l = "("
	}
	if hiOpen {
		r = ")"
	}
	return l + f(lo) + ", " + f(hi) + r
}

// inRange checks lo <(=) x <(=) hi and reports "must be in ..., got ...".
func inRange[T cmp.Ordered](v *validator, path string, x, lo, hi T, loOpen, hiOpen bool, f func(T) string) bool {
	okLo := x > lo || !loOpen && x == lo
	okHi := x < hi || !hiOpen && x == hi
	if okLo && okHi {
		return true
	}
	var zero T
	bound := func(b T) string {
		if b == zero {
			return "0" // "(0, 200mm/s]" reads better than "(0mm/s, 200mm/s]"
		}
		return f(b)
	}
	v.add(path, "must be in %s, got %s", interval(lo, hi, loOpen, hiOpen, bound), f(x))
	return false
}

// oneOf checks that s is one of set.
func oneOf(v *validator, path, s string, set ...string) bool {
	if slices.Contains(set, s) {
		return true
	}
	v.add(path, "must be one of %s, got %q", strings.Join(set, "|"), s)
	return false
}

func fmtInt(i int) string          { return strconv.Itoa(i) }
func fmtFloat(f float64) string    { return strconv.FormatFloat(f, 'g', -1, 64) }
func fmtDist(d Distance) string    { return d.String() }
func fmtSpeed(s Speed) string      { return s.String() }
func fmtAcc(a Acceleration) string { return a.String() }
func fmtCur(c Current) string      { return c.String() }
func fmtDur(d Duration) string     { return d.String() }
func fmtHex(a uint16) string       { return fmt.Sprintf("0x%02X", a) }

var (
	robotIDRe     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	i2cBusRe      = regexp.MustCompile(`^(/dev/i2c-[0-9]+|I2C[0-9]+|[0-9]+)$`)
	videoDevRe    = regexp.MustCompile(`^/dev/(video[0-9]+|v4l/by-(id|path)/[^/]+)$`)
	gpioChipRe    = regexp.MustCompile(`^(/dev/)?gpiochip[0-9]+$`)
	pinNameRe     = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	brokerSchemes = []string{"tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"}
	tlsSchemes    = []string{"ssl", "tls", "mqtts", "wss"}
)

// Validate checks every value and the relations between them. It returns
// nil or a *ValidationError listing all problems found.
func (c *Config) Validate() error {
	if c == nil {
		return &ValidationError{Problems: []Problem{{Msg: "no configuration"}}}
	}
	v := &validator{}
	c.validateMachine(v)
	c.validateAgent(v)
	c.validateCommands(v)
	c.validateScan(v)
	c.validateClassify(v)
	c.validateSim(v)
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

func (c *Config) validateMachine(v *validator) {
	m := &c.Machine
	if m.Name == "" {
		v.add("machine.name", "required (the robot model/revision, e.g. \"sim\" or \"papscan-r2\")")
	}
	if m.I2CBus != "sim" && !i2cBusRe.MatchString(m.I2CBus) {
		v.add("machine.i2c_bus", "must be \"sim\", a /dev/i2c-N path or a periph bus name (\"1\", \"I2C1\"), got %q", m.I2CBus)
	}
	axes := []struct {
		name string
		a    *Axis
	}{{"x", &m.Axes.X}, {"y", &m.Axes.Y}, {"z", &m.Axes.Z}}
	for _, ax := range axes {
		validateAxis(v, "machine.axes."+ax.name, ax.a)
	}
	if x, y := m.Axes.X.Driver, m.Axes.Y.Driver; x != y && x != "dac" && y != "dac" {
		// A Tic waits by polling and feeds its stage partner's dead-man
		// while it does; a stepdir axis waits for its step goroutine, so a
		// Tic partner's command timeout would fire during the wait.
		v.add("machine.axes.y.driver", "the stage's x and y move together and need the same driver, got x %q and y %q", x, y)
	}
	for _, ax := range axes[:2] {
		if ax.a.Driver == "dac" {
			v.add("machine.axes."+ax.name+".driver", "\"dac\" (a piezo focus stage) is only for z, got it for %s", ax.name)
		}
	}
	// Distinct I²C addresses.
	for i := range axes {
		for j := range i {
			if axes[i].a.Address == axes[j].a.Address {
				v.add("machine.axes."+axes[i].name+".address",
					"I2C address %s is already used by machine.axes.%s.address; the three axes need distinct addresses",
					fmtHex(axes[i].a.Address), axes[j].name)
			}
		}
	}
	if m.Light.Driver == "pca9685" {
		for _, ax := range axes {
			if ax.a.Address == m.Light.PCA9685.Address {
				v.add("machine.light.pca9685.address", "I2C address %s is already used by machine.axes.%s.address",
					fmtHex(m.Light.PCA9685.Address), ax.name)
			}
		}
	}
	validateCamera(v, &m.Camera)

	// Pins.
	pins := []struct {
		path string
		pin  Pin
	}{
		{"machine.light.pin", m.Light.Pin},
		{"machine.panel.led_ready", m.Panel.LEDReady},
		{"machine.panel.led_busy", m.Panel.LEDBusy},
		{"machine.panel.led_fault", m.Panel.LEDFault},
		{"machine.panel.button_start", m.Panel.ButtonStart},
		{"machine.panel.button_abort", m.Panel.ButtonAbort},
		{"machine.panel.button_ack", m.Panel.ButtonAck},
	}
	if m.Light.Driver != "gpio" {
		pins = pins[1:] // the lamp pin is unused
	}
	if !m.Camera.Trigger.IsZero() {
		pins = append(pins, struct {
			path string
			pin  Pin
		}{"machine.camera.trigger", m.Camera.Trigger})
	}
	for _, ax := range axes {
		if ax.a.Driver != "stepdir" {
			continue
		}
		sd := ax.a.StepDir
		p := "machine.axes." + ax.name + ".stepdir."
		pins = append(pins, []struct {
			path string
			pin  Pin
		}{{p + "step", sd.Step}, {p + "dir", sd.Dir}, {p + "enable", sd.Enable}, {p + "limit", sd.Limit}}...)
	}
	used := map[string]string{}
	for _, p := range pins {
		if !validatePin(v, p.path, p.pin) {
			continue
		}
		k := pinKey(p.pin)
		if prev, ok := used[k]; ok {
			v.add(p.path, "pin %s is already used by %s", p.pin, prev)
			continue
		}
		used[k] = p.path
	}
	inRange(v, "machine.light.brightness", m.Light.Brightness, 0, 1, false, false, fmtFloat)
	if oneOf(v, "machine.light.driver", m.Light.Driver, "gpio", "pca9685") && m.Light.Driver == "pca9685" {
		pc := &m.Light.PCA9685
		inRange(v, "machine.light.pca9685.address", pc.Address, 0x08, 0x77, false, false, fmtHex)
		inRange(v, "machine.light.pca9685.channel", pc.Channel, 0, 15, false, false, fmtInt)
		inRange(v, "machine.light.pca9685.frequency", pc.Frequency, 24*Hertz, 1526*Hertz, false, false, func(f Frequency) string { return f.String() })
	}
	inRange(v, "machine.panel.debounce", m.Panel.Debounce, Duration(time.Millisecond), Duration(200*time.Millisecond), false, false, fmtDur)
	inRange(v, "machine.panel.long_press", m.Panel.LongPress, Duration(300*time.Millisecond), Duration(10*time.Second), false, false, fmtDur)
	inRange(v, "machine.loader.slots", m.Loader.Slots, 1, 60, false, false, fmtInt)
	inRange(v, "machine.loader.load_time", m.Loader.LoadTime, 0, Duration(5*time.Minute), false, false, fmtDur)
}

// StepDirMaxStepRate is the highest step rate (steps/s) a "stepdir" axis
// may need: max_speed × microsteps_per_um. The agent times every pulse in
// userspace (see hal/stepdir).
const StepDirMaxStepRate = 2000

func validateAxis(v *validator, p string, a *Axis) {
	oneOf(v, p+".driver", a.Driver, "tic", "stepdir", "dac")
	oneOf(v, p+".approach", a.Approach, "forward", "reverse")
	switch a.Driver {
	case "stepdir":
		if sps := a.MaxSpeed.UMPerS() * a.MicrostepsPerUM; sps > StepDirMaxStepRate {
			v.add(p+".max_speed", "max_speed × microsteps_per_um must be <= %d steps/s for a stepdir axis (steps are timed in userspace), got %s × %s = %.0f/s",
				StepDirMaxStepRate, a.MaxSpeed, fmtFloat(a.MicrostepsPerUM), sps)
		}
	case "dac":
		inRange(v, p+".address", a.Address, 0x08, 0x77, false, false, fmtHex)
		if inRange(v, p+".dac.full_scale", a.DAC.FullScale, 0, Millimetre, true, false, fmtDist) {
			if a.TravelMin < 0 || a.TravelMax > a.DAC.FullScale {
				v.add(p+".travel_max", "travel_min..travel_max (%s..%s) must lie within 0..dac.full_scale (%s)", a.TravelMin, a.TravelMax, a.DAC.FullScale)
			}
		}
		if a.DAC.Gain != 1 && a.DAC.Gain != 2 {
			v.add(p+".dac.gain", "must be 1 (0..2.5V) or 2 (0..5V), got %d", a.DAC.Gain)
		}
	}
	if a.Driver == "tic" {
		// The Tic's facts (models, step modes, current limits, ranges)
		// are hal/ticaxis/ticspec's: the driver checks the same.
		variant, ok := ticspec.Lookup(a.TicVariant)
		if !ok {
			v.add(p+".tic_variant", "must be one of %s, got %q", strings.Join(ticspec.Names(), "|"), a.TicVariant)
		} else {
			if !variant.Offers(a.StepMode) {
				v.add(p+".step_mode", "must be one of %s for a Tic %s, got %d",
					joinInts(variant.StepModes), a.TicVariant, a.StepMode)
			}
			inRange(v, p+".current_limit", a.CurrentLimit, 0, Current(variant.MaxCurrent), true, false, fmtCur)
		}
		inRange(v, p+".address", a.Address, 0x08, 0x77, false, false, fmtHex)
	}
	okSteps := inRange(v, p+".microsteps_per_um", a.MicrostepsPerUM, 0, 1000, true, false, fmtFloat)
	if a.TravelMin >= a.TravelMax {
		v.add(p+".travel_max", "must be greater than travel_min (%s), got %s", a.TravelMin, a.TravelMax)
	}
	okSpeed := inRange(v, p+".max_speed", a.MaxSpeed, 0, 200*MillimetrePerSecond, true, false, fmtSpeed)
	inRange(v, p+".acceleration", a.Acceleration, 0, 10*MetrePerSecond2, true, false, fmtAcc)
	if okSpeed {
		inRange(v, p+".homing_speed", a.HomingSpeed, 0, a.MaxSpeed, true, false, fmtSpeed)
	}
	inRange(v, p+".homing_timeout", a.HomingTimeout, Duration(time.Second), Duration(5*time.Minute), false, false, fmtDur)
	oneOf(v, p+".home_direction", a.HomeDirection, "reverse", "forward")
	inRange(v, p+".settle", a.Settle, 0, Duration(time.Second), false, false, fmtDur)
	inRange(v, p+".command_timeout", a.CommandTimeout, Duration(100*time.Millisecond), Duration(10*time.Second), false, false, fmtDur)
	inRange(v, p+".backlash", a.Backlash, 0, Millimetre, false, true, fmtDist)
	if okSteps && a.Driver == "tic" {
		if okSpeed {
			sps := a.MaxSpeed.UMPerS() * a.MicrostepsPerUM
			if _, ok := ticspec.SpeedUnits(sps); !ok && sps > 1 {
				v.add(p+".max_speed", "max_speed × microsteps_per_um must be <= %d microsteps/s (Tic limit), got %s × %s = %.0f/s",
					ticspec.MaxStepsPerSecond, a.MaxSpeed, fmtFloat(a.MicrostepsPerUM), sps)
			} else if !ok {
				v.add(p+".max_speed", "max_speed × microsteps_per_um must be at least %g microsteps/s (the Tic's speed unit), got %s × %s = %g/s",
					1.0/ticspec.SpeedScale, a.MaxSpeed, fmtFloat(a.MicrostepsPerUM), sps)
			}
		}
		if a.Acceleration > 0 && a.Acceleration <= 10*MetrePerSecond2 {
			if sps2 := a.Acceleration.UMPerS2() * a.MicrostepsPerUM; !ticAccelOK(sps2) {
				v.add(p+".acceleration", "acceleration × microsteps_per_um must be in %d..%d microsteps/s² (Tic range), got %s × %s = %g/s²",
					ticspec.MinAccelUnits/ticspec.AccelScale, ticspec.MaxAccelUnits/ticspec.AccelScale, a.Acceleration, fmtFloat(a.MicrostepsPerUM), sps2)
			}
		}
		for _, t := range []struct {
			key string
			d   Distance
		}{{"travel_min", a.TravelMin}, {"travel_max", a.TravelMax}, {"backlash", a.Backlash}} {
			if s := t.d.UM() * a.MicrostepsPerUM; !ticPositionOK(s) {
				v.add(p+"."+t.key, "%s × microsteps_per_um %s = %.0f microsteps exceeds the Tic's 32-bit position", t.d, fmtFloat(a.MicrostepsPerUM), s)
			}
		}
	}
}

func ticAccelOK(stepsPerS2 float64) bool    { _, ok := ticspec.AccelUnits(stepsPerS2); return ok }
func ticPositionOK(microsteps float64) bool { _, ok := ticspec.Position(microsteps); return ok }

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, "|")
}

func validateCamera(v *validator, cam *Camera) {
	const p = "machine.camera"
	if cam.Device != "sim" && !videoDevRe.MatchString(cam.Device) {
		v.add(p+".device", "must be \"sim\" or a V4L2 device like \"/dev/video0\", got %q", cam.Device)
	}
	oneOf(v, p+".pixel_format", cam.PixelFormat, "YUYV", "RGB3", "MJPEG")
	if inRange(v, p+".width", cam.Width, 64, 8192, false, false, fmtInt) &&
		cam.PixelFormat == "YUYV" && cam.Width%2 != 0 {
		v.add(p+".width", "must be even for YUYV (two pixels share chroma), got %d", cam.Width)
	}
	inRange(v, p+".height", cam.Height, 64, 8192, false, false, fmtInt)
	inRange(v, p+".frame_rate", cam.FrameRate, 0, 240, true, false, fmtFloat)
	inRange(v, p+".exposure", cam.Exposure, 0, Duration(time.Second), true, false, fmtDur)
	inRange(v, p+".gain", cam.Gain, 0, 64, false, false, fmtFloat)
	inRange(v, p+".gain_unity", cam.GainUnity, 0, 1<<20, false, false, fmtInt)
	inRange(v, p+".buffer_count", cam.BufferCount, 2, 8, false, false, fmtInt)
	inRange(v, p+".reopen_attempts", cam.ReopenAttempts, 1, 20, false, false, fmtInt)
	inRange(v, p+".reopen_backoff", cam.ReopenBackoff, 0, Duration(10*time.Second), true, false, fmtDur)
	inRange(v, p+".frame_timeout", cam.FrameTimeout, 0, Duration(10*time.Second), true, false, fmtDur)
	inRange(v, p+".pixel_size", cam.PixelSize, 50*Nanometre, 10*Micrometre, true, false, fmtDist)
	inRange(v, p+".objective.magnification", cam.Objective.Magnification, 0, 150, true, false, fmtFloat)
	inRange(v, p+".objective.na", cam.Objective.NA, 0, 1.4, true, false, fmtFloat)
	if inRange(v, p+".line_time", cam.LineTime, 0, Duration(time.Millisecond), false, false, fmtDur) &&
		cam.LineTime > 0 && cam.FrameRate > 0 && cam.Height > 1 {
		if readout := cam.LineTime.D() * time.Duration(cam.Height-1); readout >= time.Duration(float64(time.Second)/cam.FrameRate) {
			v.add(p+".line_time", "(height-1) × line_time (%s) must fit in a frame period (1/frame_rate), got line_time %s", readout, cam.LineTime)
		}
	}
	if cam.Trigger.IsZero() {
		inRange(v, p+".trigger_pulse", cam.TriggerPulse, 0, Duration(time.Millisecond), false, false, fmtDur)
	} else {
		inRange(v, p+".trigger_pulse", cam.TriggerPulse, Duration(time.Microsecond), Duration(time.Millisecond), false, false, fmtDur)
		if cam.FrameRate > 0 && cam.TriggerPulse.D() >= time.Duration(float64(time.Second)/cam.FrameRate) {
			v.add(p+".trigger_pulse", "must be shorter than a frame (1/frame_rate), got %s", cam.TriggerPulse)
		}
	}
}

// validatePin checks one pin spec and reports whether it is usable.
func validatePin(v *validator, p string, pin Pin) bool {
	ok := true
	switch {
	case pin.Name != "" && pin.Chip != "":
		v.add(p, "give either name or chip+line, not both (got name %q and chip %q)", pin.Name, pin.Chip)
		ok = false
	case pin.Name == "" && pin.Chip == "":
		if pin.Line != 0 {
			v.add(p+".chip", "required with line (e.g. \"gpiochip0\")")
		} else {
			v.add(p, "required: a pin name like \"GPIO17\" or chip+line")
		}
		ok = false
	case pin.Name != "":
		if !pinNameRe.MatchString(pin.Name) {
			v.add(p+".name", "must be a GPIO name like \"GPIO17\" ([A-Za-z0-9_.-]{1,64}), got %q", pin.Name)
			ok = false
		}
		if pin.Line != 0 {
			v.add(p+".line", "only with chip, not with name")
			ok = false
		}
	default:
		if !gpioChipRe.MatchString(pin.Chip) {
			v.add(p+".chip", "must be a GPIO chip like \"gpiochip0\", got %q", pin.Chip)
			ok = false
		}
		ok = inRange(v, p+".line", pin.Line, 0, 1023, false, false, fmtInt) && ok
	}
	if !oneOf(v, p+".pull", pin.Pull, "up", "down", "none", "") {
		ok = false
	}
	return ok
}

// pinKey identifies the physical line of a valid pin.
func pinKey(p Pin) string {
	if p.Chip != "" {
		return "chip:" + strings.TrimPrefix(p.Chip, "/dev/") + ":" + strconv.Itoa(p.Line)
	}
	return "name:" + strings.ToUpper(p.Name)
}

// Simulated reports whether the configuration drives the simulated
// machine (machine.i2c_bus "sim"): development and tests, where some
// production safeguards (signed acks) may be relaxed.
func (c *Config) Simulated() bool { return c.Machine.I2CBus == "sim" }

func (c *Config) validateAgent(v *validator) {
	a := &c.Agent
	if !robotIDRe.MatchString(a.RobotID) {
		v.add("agent.robot_id", "required; must match [A-Za-z0-9_-]{1,64} (it is part of MQTT topics), got %q", a.RobotID)
	}
	if strings.TrimSpace(a.StateDir) == "" {
		v.add("agent.state_dir", "required (a directory for persistent state, e.g. \"/var/lib/papscan\")")
	} else if strings.ContainsRune(a.StateDir, 0) {
		v.add("agent.state_dir", "must not contain NUL")
	}
	oneOf(v, "agent.log_level", a.LogLevel, "debug", "info", "warn", "error")

	m := &a.MQTT
	needCA := false
	for i, b := range m.Brokers {
		scheme, err := checkBrokerURL(b)
		if err != nil {
			v.add(fmt.Sprintf("agent.mqtt.brokers[%d]", i), "%v", err)
			continue
		}
		if slices.Contains(tlsSchemes, scheme) {
			needCA = true
		}
	}
	if m.ClientID != "" && (len(m.ClientID) > 128 || strings.ContainsAny(m.ClientID, " \t\n/+#")) {
		v.add("agent.mqtt.client_id", "must be at most 128 characters without blanks, '/', '+' or '#', got %q", m.ClientID)
	}
	if strings.ContainsAny(m.TopicPrefix, "+#\x00") || strings.HasPrefix(m.TopicPrefix, "/") ||
		strings.HasSuffix(m.TopicPrefix, "/") || strings.HasPrefix(m.TopicPrefix, "$") {
		v.add("agent.mqtt.topic_prefix", "must be topic levels without wildcards '+'/'#', leading '$' or leading/trailing '/', got %q", m.TopicPrefix)
	}
	inRange(v, "agent.mqtt.keepalive", m.KeepAlive, Duration(5*time.Second), Duration(10*time.Minute), false, false, fmtDur)
	for _, f := range []struct{ key, val string }{
		{"tls.ca_file", m.TLS.CAFile}, {"tls.cert_file", m.TLS.CertFile},
		{"tls.key_file", m.TLS.KeyFile}, {"password_file", m.PasswordFile},
	} {
		if f.val != "" && !filepath.IsAbs(f.val) {
			v.add("agent.mqtt."+f.key, "must be an absolute path, got %q", f.val)
		}
	}
	if (m.TLS.CertFile == "") != (m.TLS.KeyFile == "") {
		v.add("agent.mqtt.tls", "cert_file and key_file go together: give both or neither")
	}
	if needCA && m.TLS.CAFile == "" {
		v.add("agent.mqtt.tls.ca_file", "required when a broker uses TLS (%s://)", strings.Join(tlsSchemes, "://, "))
	}
	inRange(v, "agent.mqtt.ack_timeout", m.AckTimeout, Duration(time.Second), Duration(time.Hour), false, false, fmtDur)
	inRange(v, "agent.mqtt.outbox_window", m.OutboxWindow, 1, 10000, false, false, fmtInt)
	inRange(v, "agent.mqtt.min_free_mb", m.MinFreeMB, 0, 1000000, false, false, fmtInt)
	inRange(v, "agent.mqtt.max_reconnect_interval", m.MaxReconnectInterval, Duration(time.Second), Duration(10*time.Minute), false, false, fmtDur)
	inRange(v, "agent.mqtt.health_interval", m.HealthInterval, Duration(time.Second), Duration(time.Hour), false, false, fmtDur)
	validateKeyList(v, "agent.mqtt.ack_keys", m.AckKeys)
	if m.AckKeysFile != "" && !filepath.IsAbs(m.AckKeysFile) {
		v.add("agent.mqtt.ack_keys_file", "must be an absolute path, got %q", m.AckKeysFile)
	}
	if len(m.Brokers) > 0 && !c.Simulated() && len(m.AckKeys) == 0 && m.AckKeysFile == "" {
		v.add("agent.mqtt.ack_keys", "required on a real robot with brokers (or ack_keys_file): without the fleet receivers' keys anyone who can publish on the ack topic could make the robot delete results the fleet never stored")
	}
	if m.PasswordFile != "" && m.Username == "" {
		v.add("agent.mqtt.username", "required when password_file is set (MQTT sends a password only with a user name)")
	}
}

// checkBrokerURL checks one broker URL and returns its scheme.
func checkBrokerURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("not a URL like \"tcp://broker.lab:1883\": %v", err)
	}
	if !slices.Contains(brokerSchemes, u.Scheme) {
		return "", fmt.Errorf("scheme must be one of %s, got %q in %q", strings.Join(brokerSchemes, "|"), u.Scheme, s)
	}
	if u.Opaque != "" || u.Host == "" {
		return "", fmt.Errorf("want %s://host:port, got %q", u.Scheme, s)
	}
	if u.User != nil {
		return "", fmt.Errorf("must not contain credentials; use username and password_file (got user info in %q)", u.Redacted())
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("missing host in %q", s)
	}
	port := u.Port()
	if port == "" {
		return "", fmt.Errorf("missing port in %q (e.g. 1883 for tcp, 8883 for TLS)", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port must be in [1, 65535], got %q", port)
	}
	if strings.ContainsAny(u.Hostname(), " \t") || (strings.Contains(u.Hostname(), ":") && net.ParseIP(u.Hostname()) == nil) {
		return "", fmt.Errorf("bad host %q", u.Hostname())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("must not have a query or fragment, got %q", s)
	}
	if u.Path != "" && u.Path != "/" && u.Scheme != "ws" && u.Scheme != "wss" {
		return "", fmt.Errorf("a path is only allowed for ws:// and wss://, got %q", s)
	}
	return u.Scheme, nil
}

func (c *Config) validateScan(v *validator) {
	s := &c.Scan
	ax := &c.Machine.Axes
	inRange(v, "scan.tile_overlap", s.TileOverlap, 0, 0.5, false, true, fmtFloat)
	okDia := inRange(v, "scan.spot_diameter", s.SpotDiameter, Millimetre, 30*Millimetre, true, false, fmtDist)
	r := Distance(0)
	if okDia {
		r = s.SpotDiameter / 2
	}
	for _, t := range []struct {
		key    string
		center Distance
		axis   *Axis
		name   string
	}{{"spot_center_x", s.SpotCenterX, &ax.X, "x"}, {"spot_center_y", s.SpotCenterY, &ax.Y, "y"}} {
		if t.center-r < t.axis.TravelMin || t.center+r > t.axis.TravelMax {
			v.add("scan."+t.key, "the spot (centre %s ± %s) must lie within machine.axes.%s travel [%s, %s]",
				t.center, r, t.name, t.axis.TravelMin, t.axis.TravelMax)
		}
	}
	okRange := inRange(v, "scan.focus_range", s.FocusRange, 0, 500*Micrometre, true, false, fmtDist)
	if okRange {
		inRange(v, "scan.focus_step", s.FocusStep, 0, s.FocusRange, true, false, fmtDist)
	}
	inRange(v, "scan.focus_points", s.FocusPoints, 1, 400, false, false, fmtInt)
	z := &ax.Z
	if s.ZNominal < z.TravelMin || s.ZNominal > z.TravelMax {
		v.add("scan.z_nominal", "must lie within machine.axes.z travel [%s, %s], got %s", z.TravelMin, z.TravelMax, s.ZNominal)
	} else if okRange && (s.ZNominal-s.FocusRange < z.TravelMin || s.ZNominal+s.FocusRange > z.TravelMax) {
		v.add("scan.focus_range", "z_nominal ± focus_range (%s ± %s) must lie within machine.axes.z travel [%s, %s]",
			s.ZNominal, s.FocusRange, z.TravelMin, z.TravelMax)
	}
	if inRange(v, "scan.overview_pixel_size", s.OverviewPixelSize, 0, 200*Micrometre, false, false, fmtDist) && s.OverviewPixelSize > 0 {
		inRange(v, "scan.overview_center_x", s.OverviewCenterX, -200*Millimetre, 200*Millimetre, false, false, fmtDist)
		inRange(v, "scan.overview_center_y", s.OverviewCenterY, -200*Millimetre, 200*Millimetre, false, false, fmtDist)
	}
	inRange(v, "scan.reference_x", s.ReferenceX, ax.X.TravelMin, ax.X.TravelMax, false, false, fmtDist)
	inRange(v, "scan.reference_y", s.ReferenceY, ax.Y.TravelMin, ax.Y.TravelMax, false, false, fmtDist)
	if okRange && (s.ReferenceZ-s.FocusRange < z.TravelMin || s.ReferenceZ+s.FocusRange > z.TravelMax) {
		v.add("scan.reference_z", "reference_z ± focus_range (%s ± %s) must lie within machine.axes.z travel [%s, %s]",
			s.ReferenceZ, s.FocusRange, z.TravelMin, z.TravelMax)
	}
	inRange(v, "scan.selftest_tolerance", s.SelfTestTolerance, 0, 100*Micrometre, true, false, fmtDist)
	inRange(v, "scan.refocus_drop", s.RefocusDrop, 0, 1, false, true, fmtFloat)
	inRange(v, "scan.refocus_max", s.RefocusMax, 0, 10000, false, false, fmtInt)
	if inRange(v, "scan.z_planes", s.ZPlanes, 1, 9, false, false, fmtInt) && s.ZPlanes%2 == 0 {
		v.add("scan.z_planes", "must be odd (the middle plane is the mapped focus), got %d", s.ZPlanes)
	}
	inRange(v, "scan.z_plane_step", s.ZPlaneStep, 0, 50*Micrometre, true, false, fmtDist)
	c.validateFly(v)
}

func (c *Config) validateClassify(v *validator) {
	k := &c.Classify
	okMin := inRange(v, "classify.min_nucleus_area", k.MinNucleusArea, 0, 2000, true, false, fmtFloat)
	okMax := inRange(v, "classify.max_nucleus_area", k.MaxNucleusArea, 0, 2000, true, false, fmtFloat)
	if okMin && okMax && k.MinNucleusArea >= k.MaxNucleusArea {
		v.add("classify.max_nucleus_area", "must be greater than min_nucleus_area (%s µm²), got %s µm²",
			fmtFloat(k.MinNucleusArea), fmtFloat(k.MaxNucleusArea))
	}
	inRange(v, "classify.high_grade_threshold", k.HighGradeThreshold, 0, 1, true, true, fmtFloat)
	inRange(v, "classify.low_grade_threshold", k.LowGradeThreshold, 0, 1, true, true, fmtFloat)
	inRange(v, "classify.min_squamous_cells", k.MinSquamousCells, 0, 100000, false, false, fmtInt)
	inRange(v, "classify.gallery_size", k.GallerySize, 1, 200, false, false, fmtInt)
}

func (c *Config) validateSim(v *validator) {
	s := &c.Sim
	slots := max(c.Machine.Loader.Slots, 1)
	if s.Slides < 1 || s.Slides > slots {
		v.add("sim.slides", "must be in [1, %d] (machine.loader.slots), got %d", slots, s.Slides)
	}
	oneOf(v, "sim.spot_kind", s.SpotKind, "surepath", "thinprep")
	inRange(v, "sim.unreadable_label_slot", s.UnreadableLabelSlot, -1, slots-1, false, false, fmtInt)
	inRange(v, "sim.camera_loss_slot", s.CameraLossSlot, -1, slots-1, false, false, fmtInt)
	inRange(v, "sim.low_grade_fields", s.LowGradeFields, 1, 200, false, false, fmtInt)
	inRange(v, "sim.high_grade_fields", s.HighGradeFields, 1, 200, false, false, fmtInt)
}
