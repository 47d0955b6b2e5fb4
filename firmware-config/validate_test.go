package config

import (
	"errors"
	"strings"
	"testing"
)

// TestValidationRules parses snippets on top of the sim profile and checks
// that each rule reports its key path and the allowed range or set.
func TestValidationRules(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// machine
		{"name", "machine: {name: ''}", "machine.name: required"},
		{"i2c bus", "machine: {i2c_bus: i2c1}", `machine.i2c_bus: must be "sim", a /dev/i2c-N path or a periph bus name ("1", "I2C1"), got "i2c1"`},
		{"driver", "machine: {axes: {x: {driver: servo}}}", `machine.axes.x.driver: must be one of tic|stepdir|dac, got "servo"`},
		{"stepdir too fast", "machine: {axes: {x: {driver: stepdir}}}", "machine.axes.x.max_speed: max_speed × microsteps_per_um must be <= 2000 steps/s for a stepdir axis"},
		{"stepdir pin missing", "machine: {axes: {x: {driver: stepdir, max_speed: 5mm/s, homing_speed: 1mm/s, stepdir: {step: {}}}}}", "machine.axes.x.stepdir.step: required"},
		{"stepdir pin reused", "machine: {axes: {x: {driver: stepdir, max_speed: 5mm/s, homing_speed: 1mm/s, stepdir: {step: SIM_LED_BUSY}}}}", "machine.axes.x.stepdir.step: pin SIM_LED_BUSY is already used by machine.panel.led_busy"},
		{"mixed stage", "machine: {axes: {x: {driver: stepdir, max_speed: 5mm/s, homing_speed: 1mm/s}}}", `machine.axes.y.driver: the stage's x and y move together and need the same driver, got x "stepdir" and y "tic"`},
		{"dac on x", "machine: {axes: {x: {driver: dac}}}", `machine.axes.x.driver: "dac" (a piezo focus stage) is only for z`},
		{"dac range", "machine: {axes: {z: {driver: dac}}}", "machine.axes.z.travel_max: travel_min..travel_max (0mm..2mm) must lie within 0..dac.full_scale (100um)"},
		{"dac gain", "machine: {axes: {z: {dac: {gain: 3}, driver: dac}}}", "machine.axes.z.dac.gain: must be 1 (0..2.5V) or 2 (0..5V), got 3"},
		{"approach", "machine: {axes: {y: {approach: up}}}", `machine.axes.y.approach: must be one of forward|reverse, got "up"`},
		{"light driver", "machine: {light: {driver: pwm}}", `machine.light.driver: must be one of gpio|pca9685, got "pwm"`},
		{"pca9685 channel", "machine: {light: {driver: pca9685, pca9685: {channel: 16}}}", "machine.light.pca9685.channel: must be in [0, 15], got 16"},
		{"pca9685 frequency", "machine: {light: {driver: pca9685, pca9685: {frequency: 5kHz}}}", "machine.light.pca9685.frequency: must be in [24Hz, 1.526kHz], got 5kHz"},
		{"pca9685 address", "machine: {light: {driver: pca9685, pca9685: {address: 0x0F}}}", "machine.light.pca9685.address: I2C address 0x0F is already used by machine.axes.y.address"},
		{"variant", "machine: {axes: {x: {tic_variant: T900}}}", `machine.axes.x.tic_variant: must be one of T825|T834|T500|T249|36v4, got "T900"`},
		{"address low", "machine: {axes: {x: {address: 0x03}}}", "machine.axes.x.address: must be in [0x08, 0x77], got 0x03"},
		{"address high", "machine: {axes: {z: {address: 120}}}", "machine.axes.z.address: must be in [0x08, 0x77], got 0x78"},
		{"address dup", "machine: {axes: {y: {address: 0x0E}}}", "machine.axes.y.address: I2C address 0x0E is already used by machine.axes.x.address"},
		{"microsteps", "machine: {axes: {x: {microsteps_per_um: 0}}}", "machine.axes.x.microsteps_per_um: must be in (0, 1000], got 0"},
		{"step mode set", "machine: {axes: {x: {step_mode: 3}}}", "machine.axes.x.step_mode: must be one of 1|2|4|8|16|32 for a Tic T834, got 3"},
		{"step mode T500", "machine: {axes: {x: {tic_variant: T500, step_mode: 16}}}", "machine.axes.x.step_mode: must be one of 1|2|4|8 for a Tic T500, got 16"},
		{"step mode 36v4 ok", "machine: {axes: {z: {tic_variant: 36v4, step_mode: 256, microsteps_per_um: 1, current_limit: 5A}}}", ""},
		{"current", "machine: {axes: {x: {current_limit: 3.5A}}}", "machine.axes.x.current_limit: must be in (0, 3.456A], got 3.5A"},
		{"current zero", "machine: {axes: {x: {current_limit: 0mA}}}", "machine.axes.x.current_limit: must be in (0, 3.456A], got 0mA"},
		{"current 36v4", "machine: {axes: {x: {tic_variant: 36v4, current_limit: 9.5A}}}", "must be in (0, 9.095A], got 9.5A"},
		{"travel order", "machine: {axes: {y: {travel_min: 30mm, travel_max: 10mm}}}", "machine.axes.y.travel_max: must be greater than travel_min (30mm), got 10mm"},
		{"max speed", "machine: {axes: {x: {max_speed: 500mm/s}}}", "machine.axes.x.max_speed: must be in (0, 200mm/s], got 500mm/s"},
		{"tic step rate", "machine: {axes: {z: {max_speed: 5mm/s}}}", "machine.axes.z.max_speed: max_speed × microsteps_per_um must be <= 50000 microsteps/s (Tic limit)"},
		{"tic position", "machine: {axes: {z: {travel_max: 200m, microsteps_per_um: 12.8}}}", "machine.axes.z.travel_max: 200000mm × microsteps_per_um 12.8"},
		{"tic acceleration", "machine: {axes: {x: {acceleration: 2um/s^2}}}", "machine.axes.x.acceleration: acceleration × microsteps_per_um must be in 1..21474836 microsteps/s² (Tic range), got 2um/s^2 × 0.2 = 0.4/s²"},
		{"acceleration", "machine: {axes: {x: {acceleration: 11m/s^2}}}", "machine.axes.x.acceleration: must be in (0, 10m/s^2], got 11m/s^2"},
		{"homing speed", "machine: {axes: {x: {homing_speed: 41mm/s}}}", "machine.axes.x.homing_speed: must be in (0, 40mm/s], got 41mm/s"},
		{"homing timeout", "machine: {axes: {x: {homing_timeout: 500ms}}}", "machine.axes.x.homing_timeout: must be in [1s, 5m0s], got 500ms"},
		{"home direction", "machine: {axes: {x: {home_direction: up}}}", `machine.axes.x.home_direction: must be one of reverse|forward, got "up"`},
		{"settle", "machine: {axes: {x: {settle: 2s}}}", "machine.axes.x.settle: must be in [0, 1s], got 2s"},
		{"command timeout", "machine: {axes: {x: {command_timeout: 50ms}}}", "machine.axes.x.command_timeout: must be in [100ms, 10s], got 50ms"},
		{"backlash", "machine: {axes: {x: {backlash: 1mm}}}", "machine.axes.x.backlash: must be in [0, 1mm), got 1mm"},
		{"backlash negative", "machine: {axes: {x: {backlash: -1um}}}", "machine.axes.x.backlash: must be in [0, 1mm), got -1um"},
		// camera
		{"device", "machine: {camera: {device: video0}}", `machine.camera.device: must be "sim" or a V4L2 device like "/dev/video0", got "video0"`},
		{"device by-id ok", "machine: {camera: {device: /dev/v4l/by-id/usb-cam-video-index0}}", ""},
		{"pixel format", "machine: {camera: {pixel_format: MJPG}}", `machine.camera.pixel_format: must be one of YUYV|RGB3|MJPEG, got "MJPG"`},
		{"width", "machine: {camera: {width: 32}}", "machine.camera.width: must be in [64, 8192], got 32"},
		{"mjpeg ok", "machine: {camera: {pixel_format: MJPEG}}", ""},
		// strobe and on-the-fly scanning
		{"strobe too long for exposure", "machine: {light: {strobe_pulse: 1ms}}", "machine.light.strobe_pulse: must be <= machine.camera.exposure/4 (500µs), so the pulse lands inside the exposure despite frame-timing jitter, got 1ms"},
		{"strobe pca9685 too short", "machine: {light: {driver: pca9685, strobe_pulse: 20us}}", "machine.light.strobe_pulse: must be >= 300µs for a pca9685 lamp"},
		{"strobe pca9685 on latency", "machine: {light: {driver: pca9685, strobe_pulse: 300us}, camera: {exposure: 3ms}}", "machine.light.strobe_pulse: must be <= machine.camera.exposure/4 - 470µs (280µs) for a pca9685 lamp"},
		{"strobe exposure too short for jitter", "machine: {light: {strobe_pulse: 50us}, camera: {exposure: 400us}}", "machine.camera.exposure: must be >= 2 × (machine.light.strobe_pulse + 250µs) = 600µs with a strobe"},
		{"strobe pca9685 ok", "machine: {light: {driver: pca9685, strobe_pulse: 300us}, camera: {exposure: 3100us}}", ""},
		{"fly pca9685 blur", "scan: {mode: on_the_fly}\nmachine: {light: {driver: pca9685, strobe_pulse: 300us}, camera: {exposure: 3100us, frame_timeout: 400ms}}", "scan.mode: on_the_fly at 17.3mm/s with machine.light.strobe_pulse 300µs blurs frames by 10.37 px"},
		{"fly pca9685 slow ok", "scan: {mode: on_the_fly}\nmachine: {light: {driver: pca9685, strobe_pulse: 300us}, camera: {exposure: 3100us, frame_timeout: 400ms, frame_rate: 1.4}}", ""},
		{"scan mode", "scan: {mode: sweep}", `scan.mode: must be one of stop_and_go|on_the_fly, got "sweep"`},
		{"fly blur without strobe", "scan: {mode: on_the_fly}", "scan.mode: on_the_fly at 17.3mm/s with machine.camera.exposure 2ms blurs frames by 69.12 px (at most 0.5): set a shorter machine.light.strobe_pulse"},
		{"fly blur strobe too long", "scan: {mode: on_the_fly}\nmachine: {light: {strobe_pulse: 100us}}", "scan.mode: on_the_fly at 17.3mm/s with machine.light.strobe_pulse 100µs blurs frames by 3.46 px"},
		{"fly ok", "scan: {mode: on_the_fly}\nmachine: {light: {strobe_pulse: 10us}, camera: {frame_timeout: 400ms}}", ""},
		{"fly frame timeout", "scan: {mode: on_the_fly}\nmachine: {light: {strobe_pulse: 10us}}", "machine.camera.frame_timeout: with scan.mode on_the_fly, frame_timeout + reopen_backoff (2s + 200ms) must be under machine.axes.x.command_timeout 1s"},
		{"fly too fast for stage", "scan: {mode: on_the_fly}\nmachine: {light: {strobe_pulse: 5us}, camera: {frame_rate: 120}}", "scan.mode: on_the_fly needs a row speed of one tile per frame, 69.1mm/s, above machine.axes.x.max_speed 40mm/s"},
		{"fly z-stack", "scan: {mode: on_the_fly, z_planes: 3}\nmachine: {light: {strobe_pulse: 10us}}", "scan.z_planes: must be 1 with scan.mode on_the_fly"},
		{"fly stepdir x", "scan: {mode: on_the_fly}\nmachine: {light: {strobe_pulse: 10us}, axes: {x: {driver: stepdir, max_speed: 10mm/s}}}", "scan.mode: on_the_fly needs Tic X and Y axes"},
		{"trigger pin reused", "machine: {camera: {trigger: SIM_LED_BUSY, trigger_pulse: 10us}}", "machine.camera.trigger: pin SIM_LED_BUSY is already used by machine.panel.led_busy"},
		{"trigger pulse missing", "machine: {camera: {trigger: SIM_CAM_TRIGGER}}", "machine.camera.trigger_pulse: must be in [1µs, 1ms], got 0"},
		{"trigger pulse too long", "machine: {camera: {trigger: SIM_CAM_TRIGGER, trigger_pulse: 2ms}}", "machine.camera.trigger_pulse: must be in [1µs, 1ms], got 2ms"},
		{"trigger pulse without trigger", "machine: {camera: {trigger_pulse: 2ms}}", "machine.camera.trigger_pulse: must be in [0, 1ms], got 2ms"},
		{"trigger and strobe", "machine: {camera: {trigger: SIM_CAM_TRIGGER, trigger_pulse: 10us}, light: {strobe_pulse: 10us}}", "machine.camera.trigger: a triggered camera exposes at the trigger's edge"},
		{"trigger ok", "machine: {camera: {trigger: SIM_CAM_TRIGGER, trigger_pulse: 10us}}", ""},
		{"fly trigger blur", "scan: {mode: on_the_fly}\nmachine: {camera: {trigger: SIM_CAM_TRIGGER, trigger_pulse: 10us, frame_timeout: 400ms, exposure: 100us}}", "scan.mode: on_the_fly at 17.3mm/s with machine.camera.exposure 100µs blurs frames by 3.46 px (at most 0.5): set a shorter machine.camera.exposure"},
		{"fly trigger ok", "scan: {mode: on_the_fly}\nmachine: {camera: {trigger: SIM_CAM_TRIGGER, trigger_pulse: 10us, frame_timeout: 400ms, exposure: 12us}}", ""},
		{"line time range", "machine: {camera: {line_time: 2ms}}", "machine.camera.line_time: must be in [0, 1ms], got 2ms"},
		{"line time readout", "machine: {camera: {line_time: 40us}}", "machine.camera.line_time: (height-1) × line_time (38.36ms) must fit in a frame period"},
		{"rolling stop-and-go ok", "machine: {camera: {line_time: 30us}}", ""},
		{"fly rolling skew", "scan: {mode: on_the_fly}\nmachine: {camera: {trigger: SIM_CAM_TRIGGER, trigger_pulse: 10us, frame_timeout: 400ms, exposure: 12us, line_time: 1us}}", "machine.camera.line_time: on_the_fly at 17.3mm/s with a rolling shutter skews frames by 33.14 px between their first and last rows (at most 0.5)"},
		{"fly rolling strobe window", "scan: {mode: on_the_fly}\nmachine: {light: {strobe_pulse: 10us}, camera: {frame_timeout: 400ms, exposure: 20ms, line_time: 11us}}", "machine.camera.line_time: with a strobe, (height-1) × line_time (10.549ms) + 250µs must be <= machine.camera.exposure/2 (10ms)"},
		{"fly rolling strobe ok", "scan: {mode: on_the_fly}\nmachine: {light: {strobe_pulse: 10us}, camera: {frame_timeout: 400ms, exposure: 20ms, line_time: 10us}}", ""},
		{"width odd", "machine: {camera: {width: 1281}}", "machine.camera.width: must be even for YUYV"},
		{"width odd RGB3 ok", "machine: {camera: {width: 1281, pixel_format: RGB3}}", ""},
		{"height", "machine: {camera: {height: 9000}}", "machine.camera.height: must be in [64, 8192], got 9000"},
		{"frame rate", "machine: {camera: {frame_rate: 0}}", "machine.camera.frame_rate: must be in (0, 240], got 0"},
		{"exposure", "machine: {camera: {exposure: 2s}}", "machine.camera.exposure: must be in (0, 1s], got 2s"},
		{"gain", "machine: {camera: {gain: -1}}", "machine.camera.gain: must be in [0, 64], got -1"},
		{"buffers", "machine: {camera: {buffer_count: 1}}", "machine.camera.buffer_count: must be in [2, 8], got 1"},
		{"frame timeout", "machine: {camera: {frame_timeout: 0s}}", "machine.camera.frame_timeout: must be in (0, 10s], got 0s"},
		{"gain unity", "machine: {camera: {gain_unity: -1}}", "machine.camera.gain_unity: must be in [0, 1048576], got -1"},
		{"reopen attempts", "machine: {camera: {reopen_attempts: 0}}", "machine.camera.reopen_attempts: must be in [1, 20], got 0"},
		{"reopen backoff", "machine: {camera: {reopen_backoff: 0s}}", "machine.camera.reopen_backoff: must be in (0, 10s], got 0s"},
		{"pixel size", "machine: {camera: {pixel_size: 50nm}}", "machine.camera.pixel_size: must be in (50nm, 10um], got 50nm"},
		{"na", "machine: {camera: {objective: {magnification: 100, na: 1.5}}}", "machine.camera.objective.na: must be in (0, 1.4], got 1.5"},
		{"objective whole", "machine: {camera: {objective: {na: 0.65}}}", "machine.camera.objective.magnification: must be in (0, 150], got 0"},
		// light, panel, loader
		{"brightness", "machine: {light: {brightness: 1.5}}", "machine.light.brightness: must be in [0, 1], got 1.5"},
		{"pin both", "machine: {light: {pin: {name: GPIO4, chip: gpiochip0, line: 4}}}", `machine.light.pin: give either name or chip+line, not both`},
		{"pin none", "machine: {light: {pin: {active_low: true}}}", `machine.light.pin: required: a pin name like "GPIO17" or chip+line`},
		{"pin line no chip", "machine: {light: {pin: {line: 4}}}", "machine.light.pin.chip: required with line"},
		{"pin chip", "machine: {light: {pin: {chip: gpio0, line: 4}}}", `machine.light.pin.chip: must be a GPIO chip like "gpiochip0", got "gpio0"`},
		{"pin line range", "machine: {light: {pin: {chip: gpiochip0, line: 5000}}}", "machine.light.pin.line: must be in [0, 1023], got 5000"},
		{"pin pull", "machine: {panel: {button_ack: {name: GPIO22, pull: sideways}}}", `machine.panel.button_ack.pull: must be one of up|down|none|, got "sideways"`},
		{"pin name chars", "machine: {panel: {led_busy: 'GPIO 6'}}", `machine.panel.led_busy.name: must be a GPIO name like "GPIO17"`},
		{"pin twice", "machine: {panel: {led_busy: SIM_LED_READY}}", "machine.panel.led_busy: pin SIM_LED_READY is already used by machine.panel.led_ready"},
		{"pin twice light", "machine: {panel: {button_abort: {name: sim_light}}}", "machine.panel.button_abort: pin sim_light is already used by machine.light.pin"},
		{"pin twice chip", "machine: {light: {pin: {chip: gpiochip0, line: 3}}, panel: {led_fault: {chip: /dev/gpiochip0, line: 3}}}", "machine.panel.led_fault: pin gpiochip0:3 is already used by machine.light.pin"},
		{"debounce", "machine: {panel: {debounce: 500ms}}", "machine.panel.debounce: must be in [1ms, 200ms], got 500ms"},
		{"long press", "machine: {panel: {long_press: 100ms}}", "machine.panel.long_press: must be in [300ms, 10s], got 100ms"},
		{"slots", "machine: {loader: {slots: 61}}", "machine.loader.slots: must be in [1, 60], got 61"},
		{"load time", "machine: {loader: {load_time: 10m}}", "machine.loader.load_time: must be in [0, 5m0s], got 10m0s"},
		// agent
		{"robot id required", "agent: {robot_id: ''}", `agent.robot_id: required; must match [A-Za-z0-9_-]{1,64} (it is part of MQTT topics), got ""`},
		{"robot id slash", "agent: {robot_id: lab/1}", `agent.robot_id: required; must match [A-Za-z0-9_-]{1,64}`},
		{"robot id wildcard", "agent: {robot_id: 'lab+1'}", `got "lab+1"`},
		{"state dir", "agent: {state_dir: ''}", "agent.state_dir: required"},
		{"log level", "agent: {log_level: trace}", `agent.log_level: must be one of debug|info|warn|error, got "trace"`},
		{"client id", "agent: {mqtt: {client_id: 'a/b'}}", `agent.mqtt.client_id: must be at most 128 characters without blanks, '/', '+' or '#', got "a/b"`},
		{"topic prefix", "agent: {mqtt: {topic_prefix: 'lab/#'}}", `agent.mqtt.topic_prefix: must be topic levels without wildcards`},
		{"keepalive", "agent: {mqtt: {keepalive: 1s}}", "agent.mqtt.keepalive: must be in [5s, 10m0s], got 1s"},
		{"tls pair", "agent: {mqtt: {tls: {cert_file: /etc/c.pem}}}", "agent.mqtt.tls: cert_file and key_file go together"},
		{"tls abs", "agent: {mqtt: {tls: {ca_file: ca.pem}}}", `agent.mqtt.tls.ca_file: must be an absolute path, got "ca.pem"`},
		{"password abs", "agent: {mqtt: {username: u, password_file: pw}}", `agent.mqtt.password_file: must be an absolute path, got "pw"`},
		{"password needs user", "agent: {mqtt: {password_file: /etc/pw}}", "agent.mqtt.username: required when password_file is set"},
		{"tls needs ca", "agent: {mqtt: {brokers: ['ssl://b.lab:8883']}}", "agent.mqtt.tls.ca_file: required when a broker uses TLS"},
		{"mqtts needs ca", "agent: {mqtt: {brokers: ['mqtts://b.lab:8883']}}", "agent.mqtt.tls.ca_file: required"},
		{"tls ok", "agent: {mqtt: {brokers: ['mqtts://b.lab:8883'], tls: {ca_file: /etc/ca.pem}}}", ""},
		// scan
		{"overlap", "scan: {tile_overlap: 0.5}", "scan.tile_overlap: must be in [0, 0.5), got 0.5"},
		{"spot diameter", "scan: {spot_diameter: 1mm}", "scan.spot_diameter: must be in (1mm, 30mm], got 1mm"},
		{"spot x", "scan: {spot_center_x: 78mm}", "scan.spot_center_x: the spot (centre 78mm ± 6.5mm) must lie within machine.axes.x travel [0mm, 80mm]"},
		{"spot y", "scan: {spot_center_y: -1mm}", "scan.spot_center_y: the spot (centre -1mm ± 6.5mm) must lie within machine.axes.y travel [0mm, 30mm]"},
		{"focus range", "scan: {focus_range: 600um}", "scan.focus_range: must be in (0, 500um], got 600um"},
		{"focus step", "scan: {focus_step: 40um}", "scan.focus_step: must be in (0, 30um], got 40um"},
		{"focus points", "scan: {focus_points: 0}", "scan.focus_points: must be in [1, 400], got 0"},
		{"z nominal", "scan: {z_nominal: 3mm}", "scan.z_nominal: must lie within machine.axes.z travel [0mm, 2mm], got 3mm"},
		{"focus window", "scan: {z_nominal: 10um}", "scan.focus_range: z_nominal ± focus_range (10um ± 30um) must lie within machine.axes.z travel"},
		{"z travel moved", "machine: {axes: {z: {travel_min: 1.5mm}}}", "scan.z_nominal: must lie within machine.axes.z travel [1.5mm, 2mm], got 1mm"},
		// classify
		{"min area", "classify: {min_nucleus_area: 0}", "classify.min_nucleus_area: must be in (0, 2000], got 0"},
		{"max area", "classify: {max_nucleus_area: 2500}", "classify.max_nucleus_area: must be in (0, 2000], got 2500"},
		{"area order", "classify: {min_nucleus_area: 900, max_nucleus_area: 10}", "classify.max_nucleus_area: must be greater than min_nucleus_area (900 µm²), got 10 µm²"},
		{"high threshold", "classify: {high_grade_threshold: 1}", "classify.high_grade_threshold: must be in (0, 1), got 1"},
		{"low threshold", "classify: {low_grade_threshold: 0}", "classify.low_grade_threshold: must be in (0, 1), got 0"},
		{"squamous", "classify: {min_squamous_cells: -1}", "classify.min_squamous_cells: must be in [0, 100000], got -1"},
		{"gallery", "classify: {gallery_size: 201}", "classify.gallery_size: must be in [1, 200], got 201"},
		// sim
		{"sim slides", "sim: {slides: 11}", "sim.slides: must be in [1, 10] (machine.loader.slots), got 11"},
		{"sim slides follow slots", "sim: {slides: 11}\nmachine: {loader: {slots: 12}}", ""},
		{"sim spot kind", "sim: {spot_kind: pap}", `sim.spot_kind: must be one of surepath|thinprep, got "pap"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), "v.yaml")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *ValidationError: %v", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n%v\ndoes not contain\n%s", err, tc.want)
			}
			// The snippet is on line 1 (or 2): every problem names the file.
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "v.yaml") {
					t.Errorf("line %q does not name the source", line)
				}
			}
		})
	}
}

func TestBrokerURLs(t *testing.T) {
	tests := []struct{ url, want string }{
		{"tcp://broker.lab:1883", ""},
		{"mqtt://10.0.0.2:1883", ""},
		{"ws://[::1]:9001/mqtt", ""},
		{"wss://broker.lab:443/mqtt", ""},
		{"broker.lab:1883", `scheme must be one of tcp|mqtt|ssl|tls|mqtts|ws|wss, got "broker.lab"`},
		{"http://broker.lab:80", `scheme must be one of tcp|mqtt|ssl|tls|mqtts|ws|wss, got "http"`},
		{"tcp://broker.lab", "missing port"},
		{"tcp://:1883", "missing host"},
		{"tcp://", "want tcp://host:port"},
		{"tcp://broker.lab:0", "port must be in [1, 65535]"},
		{"tcp://broker.lab:99999", "port must be in [1, 65535]"},
		{"tcp://broker.lab:mqtt", "invalid port"},
		{"tcp://user:secret@broker.lab:1883", "must not contain credentials"},
		{"tcp://broker.lab:1883/path", "a path is only allowed for ws:// and wss://"},
		{"tcp://broker.lab:1883?x=1", "must not have a query"},
		{"tcp://bro ker:1883", "invalid character"},
		{"", "scheme must be one of"},
	}
	for _, tc := range tests {
		c := Default()
		c.Agent.MQTT.Brokers = []string{"tcp://ok.lab:1883", tc.url}
		c.Agent.MQTT.TLS.CAFile = "/etc/papscan/ca.pem"
		err := c.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: unexpected error %v", tc.url, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "agent.mqtt.brokers[1]: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error = %v; want agent.mqtt.brokers[1] and %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: error leaks the password: %v", tc.url, err)
		}
	}
}

func TestValidateCollectsAll(t *testing.T) {
	c := Default()
	c.Machine.Axes.X.MaxSpeed = 500 * MillimetrePerSecond
	c.Agent.RobotID = ""
	c.Sim.SpotKind = "x"
	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 {
		t.Fatalf("Validate = %v; want 3 problems", err)
	}
	want := "machine.axes.x.max_speed: must be in (0, 200mm/s], got 500mm/s"
	if got := strings.Split(err.Error(), "\n")[0]; got != want {
		t.Errorf("first line = %q; want %q", got, want)
	}
	if ve.Problems[1].Path != "agent.robot_id" || ve.Problems[2].Path != "sim.spot_kind" {
		t.Errorf("paths: %+v", ve.Problems)
	}
	if err := (*Config)(nil).Validate(); err == nil {
		t.Error("nil config validated")
	}
	if err := (&Config{}).Validate(); err == nil {
		t.Error("zero config validated")
	}
}
