package config

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"periph.io/x/conn/v3/physic"
)

// Config is the whole configuration of one robot and its agent.
type Config struct {
	Machine  Machine  `yaml:"machine"`
	Agent    Agent    `yaml:"agent"`
	Scan     Scan     `yaml:"scan"`
	Classify Classify `yaml:"classify"`
	Sim      Sim      `yaml:"sim"`
}

// Machine describes the hardware.
type Machine struct {
	// Name is the robot model/revision, e.g. "sim" or "papscan-r2".
	Name string `yaml:"name"`
	// I2CBus is "sim", a /dev/i2c-N path, or a periph bus name ("1", "I2C1").
	I2CBus string `yaml:"i2c_bus"`
	Axes   Axes   `yaml:"axes"`
	Camera Camera `yaml:"camera"`
	Light  Light  `yaml:"light"`
	Panel  Panel  `yaml:"panel"`
	Loader Loader `yaml:"loader"`
}

// Axes are the three motion axes: stage X and Y, focus Z.
type Axes struct {
	X Axis `yaml:"x"`
	Y Axis `yaml:"y"`
	Z Axis `yaml:"z"`
}

// Axis is one linear axis: a stepper on a Pololu Tic or a STEP/DIR
// driver, or (focus only) a piezo stage behind an I²C DAC.
type Axis struct {
	// Driver is "tic" (Pololu Tic over I²C), "stepdir" (STEP/DIR/ENABLE
	// driver on GPIO, see StepDir) or, for z only, "dac" (piezo stage
	// through an AD5693R I²C DAC at Address, see DAC).
	Driver string `yaml:"driver"`
	// TicVariant is the Tic model: T825, T834, T500, T249 or 36v4.
	TicVariant string `yaml:"tic_variant"`
	// Address is the controller's 7-bit I²C address.
	Address uint16 `yaml:"address"`
	// MicrostepsPerUM is the number of microsteps per micrometre of travel.
	MicrostepsPerUM float64 `yaml:"microsteps_per_um"`
	// StepMode is the number of microsteps per full step.
	StepMode       int          `yaml:"step_mode"`
	CurrentLimit   Current      `yaml:"current_limit"`
	TravelMin      Distance     `yaml:"travel_min"`
	TravelMax      Distance     `yaml:"travel_max"`
	MaxSpeed       Speed        `yaml:"max_speed"`
	Acceleration   Acceleration `yaml:"acceleration"`
	HomingSpeed    Speed        `yaml:"homing_speed"`
	HomingTimeout  Duration     `yaml:"homing_timeout"`
	HomeDirection  string       `yaml:"home_direction"`
	Settle         Duration     `yaml:"settle"`
	CommandTimeout Duration     `yaml:"command_timeout"`
	Backlash       Distance     `yaml:"backlash"`
	// Approach is the direction every target is approached from when
	// Backlash > 0: "forward" or "reverse".
	Approach string `yaml:"approach"`
	// StepDir are the pins of a "stepdir" axis.
	StepDir StepDir `yaml:"stepdir"`
	// DAC describes a "dac" focus stage.
	DAC DAC `yaml:"dac"`
}

// StepDir are the GPIO lines of a STEP/DIR/ENABLE stepper driver and its
// home limit switch.
type StepDir struct {
	Step   Pin `yaml:"step"`
	Dir    Pin `yaml:"dir"`
	Enable Pin `yaml:"enable"`
	Limit  Pin `yaml:"limit"`
}

// DAC describes a piezo focus stage driven by an AD5693R DAC.
type DAC struct {
	// FullScale is the stage's displacement at DAC code 65535.
	FullScale Distance `yaml:"full_scale"`
	// Gain is the DAC's output gain: 1 (0..2.5 V) or 2 (0..5 V).
	Gain int `yaml:"gain"`
}

// ToMicrosteps converts a position or distance along the axis to microsteps,
// rounded to the nearest microstep.
func (a *Axis) ToMicrosteps(d physic.Distance) int64 {
	return int64(math.Round(float64(d) / 1e3 * a.MicrostepsPerUM))
}

// FromMicrosteps converts microsteps to a distance along the axis.
func (a *Axis) FromMicrosteps(n int64) physic.Distance {
	if a.MicrostepsPerUM == 0 {
		return 0
	}
	return physic.Distance(math.Round(float64(n) / a.MicrostepsPerUM * 1e3))
}

// Camera is the microscope camera.
type Camera struct {
	// Device is "sim" or a V4L2 device such as "/dev/video0".
	Device string `yaml:"device"`
	// PixelFormat is the V4L2 pixel format: "YUYV" or "RGB3" (raw) or
	// "MJPEG" (one JPEG per frame, what USB cameras deliver at full frame
	// rate over USB 2).
	PixelFormat string   `yaml:"pixel_format"`
	Width       int      `yaml:"width"`
	Height      int      `yaml:"height"`
	FrameRate   float64  `yaml:"frame_rate"`
	Exposure    Duration `yaml:"exposure"`
	Gain        float64  `yaml:"gain"`
	// GainUnity is the raw value of the camera's V4L2 gain control that
	// means 1x; the driver sets Gain×GainUnity. 0 leaves the camera's gain
	// (and automatic gain) alone.
	GainUnity    int      `yaml:"gain_unity"`
	BufferCount  int      `yaml:"buffer_count"`
	FrameTimeout Duration `yaml:"frame_timeout"`
	// ReopenAttempts is how often a camera that failed (unplugged, I/O
	// error, no frames) is reopened before the camera fault latches.
	ReopenAttempts int `yaml:"reopen_attempts"`
	// ReopenBackoff is the wait before the first reopen; it doubles per
	// attempt (up to 5 s).
	ReopenBackoff Duration `yaml:"reopen_backoff"`
	// PixelSize is the size of one pixel projected onto the specimen.
	PixelSize Distance  `yaml:"pixel_size"`
	Objective Objective `yaml:"objective"`
	// Trigger is the GPIO output wired to the camera's external trigger
	// input; zero: the camera runs free. With a trigger the camera
	// exposes one frame (for Exposure) at each edge to the line's active
	// level, and the agent pulses it for every frame it takes: on the fly
	// as the stage crosses each tile, so the exposure itself freezes the
	// motion.
	Trigger Pin `yaml:"trigger"`
	// TriggerPulse is how long the trigger line is held active per frame.
	TriggerPulse Duration `yaml:"trigger_pulse"`
	// LineTime is a rolling shutter's time between the exposure starts of
	// successive rows; 0 is a global shutter.
	LineTime Duration `yaml:"line_time"`
}

// Objective is the microscope objective. In YAML it is replaced as a whole:
// keys left out of an objective mapping are zero, not inherited.
type Objective struct {
	Magnification float64 `yaml:"magnification"`
	NA            float64 `yaml:"na"`
	Name          string  `yaml:"name"`
}

// UnmarshalYAML decodes an objective from scratch (see Objective).
func (o *Objective) UnmarshalYAML(n *yaml.Node) error {
	type plain Objective
	var p plain
	if err := decodeWhole(n, &p, "objective"); err != nil {
		return err
	}
	*o = Objective(p)
	return nil
}

// Light is the transmitted-light illumination.
type Light struct {
	// Driver is "gpio" (on/off lamp on Pin) or "pca9685" (dimmed by a
	// PCA9685 PWM channel, see PCA9685).
	Driver string `yaml:"driver"`
	Pin    Pin    `yaml:"pin"`
	// PCA9685 is the PWM controller of a "pca9685" lamp.
	PCA9685 PCA9685 `yaml:"pca9685"`
	// Brightness is the relative brightness used while scanning, 0..1.
	Brightness float64 `yaml:"brightness"`
	// StrobePulse, when above zero, makes the lamp a strobe: an
	// on-the-fly scan switches the steady light off along each row and
	// flashes it this long once per frame, inside the camera's exposure,
	// so the moving stage is frozen in the frame. 0: steady light only.
	StrobePulse Duration `yaml:"strobe_pulse"`
}

// PCA9685 is one channel of a PCA9685 PWM controller on machine.i2c_bus.
type PCA9685 struct {
	Address   uint16    `yaml:"address"`
	Channel   int       `yaml:"channel"`
	Frequency Frequency `yaml:"frequency"`
}

// Panel is the operator panel: three LEDs and three buttons.
type Panel struct {
	LEDReady    Pin      `yaml:"led_ready"`
	LEDBusy     Pin      `yaml:"led_busy"`
	LEDFault    Pin      `yaml:"led_fault"`
	ButtonStart Pin      `yaml:"button_start"`
	ButtonAbort Pin      `yaml:"button_abort"`
	ButtonAck   Pin      `yaml:"button_ack"`
	Debounce    Duration `yaml:"debounce"`
	LongPress   Duration `yaml:"long_press"`
}

// Loader is the slide loader.
type Loader struct {
	Slots    int      `yaml:"slots"`
	LoadTime Duration `yaml:"load_time"`
}

// Pin names a GPIO line: either by Name (a periph gpioreg name such as
// "GPIO17", or "SIM_..." in the simulator) or by Chip and Line (e.g.
// "gpiochip0", 17), not both.
//
// In YAML a pin is a mapping with keys name, chip, line, active_low and
// pull, or just a name ("led_ready: GPIO17"). A pin is replaced as a whole:
// keys left out are zero, not inherited from the defaults.
type Pin struct {
	Name      string `yaml:"name,omitempty"`
	Chip      string `yaml:"chip,omitempty"`
	Line      int    `yaml:"line,omitempty"`
	ActiveLow bool   `yaml:"active_low,omitempty"`
	// Pull is the bias: "up", "down", "none" or "" (leave as is).
	Pull string `yaml:"pull,omitempty"`
}

// IsZero reports whether no pin is given.
func (p Pin) IsZero() bool { return p == Pin{} }

// String is "GPIO17" or "gpiochip0:17".
func (p Pin) String() string {
	if p.Chip != "" {
		return strings.TrimPrefix(p.Chip, "/dev/") + ":" + strconv.Itoa(p.Line)
	}
	return p.Name
}

// UnmarshalYAML decodes a pin from scratch (see Pin).
func (p *Pin) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*p = Pin{Name: n.Value}
		return nil
	}
	type plain Pin
	var q plain
	if err := decodeWhole(n, &q, "pin"); err != nil {
		return err
	}
	*p = Pin(q)
	return nil
}

// decodeWhole decodes mapping node n into the zero value out, rejecting
// keys out has no field for.
func decodeWhole(n *yaml.Node, out any, what string) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("want a %s mapping", what)
	}
	known := yamlKeys(deref(out))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if k == "<<" {
			continue
		}
		if !known[k] {
			return fmt.Errorf("line %d: unknown %s key %q", n.Content[i].Line, what, k)
		}
	}
	return n.Decode(out)
}

// Agent configures the agent process.
type Agent struct {
	// RobotID identifies the robot; it is part of MQTT topics.
	RobotID  string `yaml:"robot_id"`
	StateDir string `yaml:"state_dir"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	MQTT     MQTT   `yaml:"mqtt"`
	// Commands configures signed fleet commands (commands.go).
	Commands Commands `yaml:"commands"`
}

// MQTT configures the connection to the lab's MQTT broker(s).
type MQTT struct {
	// Brokers are broker URLs (tcp://, mqtt://, ssl://, tls://, mqtts://,
	// ws://, wss://). Empty means none is configured; the simulator then
	// starts an embedded broker.
	Brokers []string `yaml:"brokers"`
	// ClientID; empty means "papscan-" + robot_id, see EffectiveClientID.
	ClientID string `yaml:"client_id"`
	// TopicPrefix is the first topic level; empty means "papscan".
	TopicPrefix  string   `yaml:"topic_prefix"`
	KeepAlive    Duration `yaml:"keepalive"`
	TLS          TLS      `yaml:"tls"`
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`

	// Durable delivery (telemetry/outbox). AckTimeout: an entry without
	// the fleet's ack for this long is sent again. OutboxWindow: entries
	// published but not yet acked. MinFreeMB: free space the state
	// directory keeps; below it no new slide is taken. MaxReconnectInterval
	// caps the reconnect back-off. HealthInterval: period of the health
	// message.
	AckTimeout           Duration `yaml:"ack_timeout"`
	OutboxWindow         int      `yaml:"outbox_window"`
	MinFreeMB            int      `yaml:"min_free_mb"`
	MaxReconnectInterval Duration `yaml:"max_reconnect_interval"`
	HealthInterval       Duration `yaml:"health_interval"`
	// AckKeys are the trusted Ed25519 public keys of the fleet's receivers
	// ("<key_id>:<base64>", as `papscan-fleet keygen` prints): only acks
	// and replay requests signed by one of them are obeyed. A real robot
	// (machine.i2c_bus not "sim") with brokers must have at least one,
	// here or in AckKeysFile; the simulated machine may run without
	// (development only: acks are then not signature-checked, and the
	// agent logs it).
	AckKeys []string `yaml:"ack_keys"`
	// AckKeysFile is an absolute path to a file with more receiver keys,
	// one "<key_id>:<base64>" per line ('#' comments); "" = none. A file
	// named here must exist and hold at least one key when the agent
	// starts.
	AckKeysFile string `yaml:"ack_keys_file"`
}

// TLS names the files of the MQTT TLS setup; all absolute paths.
type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// DefaultTopicPrefix is used when agent.mqtt.topic_prefix is empty.
const DefaultTopicPrefix = "papscan"

// EffectiveClientID is agent.mqtt.client_id, or "papscan-" + robot_id when
// that is empty.
func (c *Config) EffectiveClientID() string {
	if c.Agent.MQTT.ClientID != "" {
		return c.Agent.MQTT.ClientID
	}
	return "papscan-" + c.Agent.RobotID
}

// EffectiveTopicPrefix is agent.mqtt.topic_prefix, or DefaultTopicPrefix
// when that is empty.
func (c *Config) EffectiveTopicPrefix() string {
	if c.Agent.MQTT.TopicPrefix != "" {
		return c.Agent.MQTT.TopicPrefix
	}
	return DefaultTopicPrefix
}

// Scan configures how a slide is scanned.
type Scan struct {
	// Mode is how tiles are imaged: "stop_and_go" (move, settle, expose
	// per tile) or "on_the_fly" (the stage crosses each row at constant
	// speed and frames are taken one tile apart while it moves; needs a
	// frame rate, a Tic X axis and a short enough exposure or strobe).
	Mode string `yaml:"mode"`
	// TileOverlap is the overlap of neighbouring tiles as a fraction.
	TileOverlap float64 `yaml:"tile_overlap"`
	// SpotCenterX, SpotCenterY are the nominal cell-spot centre in stage
	// coordinates.
	SpotCenterX  Distance `yaml:"spot_center_x"`
	SpotCenterY  Distance `yaml:"spot_center_y"`
	SpotDiameter Distance `yaml:"spot_diameter"`
	// FocusRange is the half range searched around the expected focus.
	FocusRange Distance `yaml:"focus_range"`
	// FocusStep is the coarse focus step.
	FocusStep Distance `yaml:"focus_step"`
	// FocusPrior starts each slide's focus map from the previous slide's
	// surface (a bracket instead of a full sweep at its first point).
	FocusPrior bool `yaml:"focus_prior"`
	// FocusPoints is the number of autofocus points of the focus map (the
	// scanner uses no more than one per 10 planned tiles).
	FocusPoints int `yaml:"focus_points"`
	// ZNominal is the expected focus Z when nothing better is known.
	ZNominal Distance `yaml:"z_nominal"`
	// OverviewPixelSize is the slide size of one pixel of the
	// low-magnification overview camera (label and spot); 0 means the robot
	// has none (the spot is then found by probing with the main camera and
	// the label is not read).
	OverviewPixelSize Distance `yaml:"overview_pixel_size"`
	// OverviewCenterX, OverviewCenterY are the stage position that puts the
	// point seen at the overview image's centre under the objective.
	OverviewCenterX Distance `yaml:"overview_center_x"`
	OverviewCenterY Distance `yaml:"overview_center_y"`
	// ReferenceX, ReferenceY are the stage position of the reference target
	// on the slide holder used by the self-test; ReferenceZ is its focus.
	ReferenceX Distance `yaml:"reference_x"`
	ReferenceY Distance `yaml:"reference_y"`
	ReferenceZ Distance `yaml:"reference_z"`
	// SelfTestTolerance is the largest home-repeatability error and focus
	// offset on the reference the self-test accepts.
	SelfTestTolerance Distance `yaml:"selftest_tolerance"`
	// RefocusDrop: a tile whose sharpness falls below this fraction of the
	// running median is refocused; 0 disables refocusing.
	RefocusDrop float64 `yaml:"refocus_drop"`
	// RefocusMax bounds the refocus operations per slide.
	RefocusMax int `yaml:"refocus_max"`
	// ZPlanes is the number of focal planes per tile (1, or an odd z-stack
	// for thick clusters, merged by per-pixel sharpness); ZPlaneStep their
	// spacing.
	ZPlanes    int      `yaml:"z_planes"`
	ZPlaneStep Distance `yaml:"z_plane_step"`
}

// Classify configures cell classification and the slide verdict.
type Classify struct {
	// MinNucleusArea, MaxNucleusArea bound nucleus areas in µm².
	MinNucleusArea float64 `yaml:"min_nucleus_area"`
	MaxNucleusArea float64 `yaml:"max_nucleus_area"`
	// HighGradeThreshold: a cell is high grade when
	// P(ASC-H)+P(HSIL)+P(SCC) >= this.
	HighGradeThreshold float64 `yaml:"high_grade_threshold"`
	// LowGradeThreshold: a cell is low grade when P(ASC-US)+P(LSIL) >= this.
	LowGradeThreshold float64 `yaml:"low_grade_threshold"`
	// The slide verdict is not configured: it is the fitted slide rule
	// embedded with the cell model (classify.SlideRule).
	// MinSquamousCells is the adequacy minimum (Bethesda: 5000 for
	// liquid-based preparations).
	MinSquamousCells int `yaml:"min_squamous_cells"`
	GallerySize      int `yaml:"gallery_size"`
}

// Sim configures the simulated robot; only `papscan sim` uses it.
type Sim struct {
	Slides int   `yaml:"slides"`
	Seed   int64 `yaml:"seed"`
	// DataDir; "" means automatic: ../shared/data if present.
	DataDir  string `yaml:"data_dir"`
	SpotKind string `yaml:"spot_kind"`
	// UnreadableLabelSlot is a slot whose slide has a damaged label; -1
	// for none.
	UnreadableLabelSlot int `yaml:"unreadable_label_slot"`
	// CameraLossSlot is a slot whose camera is unplugged half way through
	// its tiles; -1 for none.
	CameraLossSlot int `yaml:"camera_loss_slot"`
	// LowGradeFields and HighGradeFields are how many distinct abnormal
	// CRIC fields a low- or high-grade simulated slide carries (at most
	// as many as the data holds).
	LowGradeFields  int `yaml:"low_grade_fields"`
	HighGradeFields int `yaml:"high_grade_fields"`
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	d := *c
	if c.Agent.MQTT.Brokers != nil {
		d.Agent.MQTT.Brokers = append([]string(nil), c.Agent.MQTT.Brokers...)
	}
	if c.Agent.MQTT.AckKeys != nil {
		d.Agent.MQTT.AckKeys = append([]string(nil), c.Agent.MQTT.AckKeys...)
	}
	if c.Agent.Commands.FleetKeys != nil {
		d.Agent.Commands.FleetKeys = append([]string(nil), c.Agent.Commands.FleetKeys...)
	}
	return &d
}

// sortedKeys returns the keys of m in order.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
