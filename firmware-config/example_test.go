package config_test

import (
	"fmt"

	config "papscan/firmware-config"
)

func ExampleParse() {
	_, err := config.Parse([]byte(`
machine:
  axes:
    x:
      max_speed: 500mm/s
      homing_speed: fast
`), "robot.yaml")
	fmt.Println(err)

	cfg, err := config.Parse([]byte(`
agent:
  robot_id: lab-7
machine:
  axes:
    x:
      max_speed: 25mm/s
`), "robot.yaml")
	if err != nil {
		panic(err)
	}
	x := cfg.Machine.Axes.X
	fmt.Println(x.MaxSpeed, x.MaxSpeed.MMPerS(), x.TravelMax.D(), cfg.EffectiveClientID())
	// Output:
	// robot.yaml:5: machine.axes.x.max_speed: must be in (0, 200mm/s], got 500mm/s
	// robot.yaml:6: machine.axes.x.homing_speed: want a speed like "20mm/s", got "fast"
	// 25mm/s 25 80mm papscan-lab-7
}

func ExampleConfig_Validate() {
	cfg := config.Default()
	cfg.Machine.Axes.X.MaxSpeed = 500 * config.MillimetrePerSecond
	cfg.Machine.Panel.LEDBusy = cfg.Machine.Panel.LEDReady
	fmt.Println(cfg.Validate())
	// Output:
	// machine.axes.x.max_speed: must be in (0, 200mm/s], got 500mm/s
	// machine.panel.led_busy: pin SIM_LED_READY is already used by machine.panel.led_ready
}
