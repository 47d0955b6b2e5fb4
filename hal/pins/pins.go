package pins

import (
	"fmt"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3/gpioioctl"
)

// Line names one GPIO line: by Name (periph's gpioreg, e.g. "GPIO17"), or
// by Chip ("gpiochip0" or "/dev/gpiochip0") and Line offset, with its
// active level and bias. The assembly point (papscan/robot) maps the
// configuration's pins onto it.
type Line struct {
	Name      string
	Chip      string
	Line      int
	ActiveLow bool
	// Pull is the bias: "up", "down", "none" or "" (leave as is).
	Pull string
}

// IsZero reports whether no line is given.
func (p Line) IsZero() bool { return p == Line{} }

// String is "GPIO17" or "gpiochip0:17".
func (p Line) String() string {
	if p.Chip != "" {
		return strings.TrimPrefix(p.Chip, "/dev/") + ":" + strconv.Itoa(p.Line)
	}
	return p.Name
}

// Opener opens GPIO lines. Its zero value uses periph's registries: gpioreg
// for names and gpioioctl.Chips for chip+line (both filled by host.Init).
// Tests replace the lookups.
type Opener struct {
	// ByName looks a line up by name; nil means gpioreg.ByName.
	ByName func(name string) gpio.PinIO
	// ByChipLine looks a line up by chip ("gpiochip0" or
	// "/dev/gpiochip0") and offset; nil means gpioioctl.Chips.
	ByChipLine func(chip string, line int) (gpio.PinIO, error)
}

// Open opens p with the zero Opener (periph's registries).
func Open(p Line) (gpio.PinIO, error) { return Opener{}.Open(p) }

// Open returns the line p names. The error names the pin as configured.
func (o Opener) Open(p Line) (gpio.PinIO, error) {
	switch {
	case p.IsZero():
		return nil, fmt.Errorf("gpio: no pin given")
	case p.Name != "" && p.Chip != "":
		return nil, fmt.Errorf("gpio %q: give a name or chip+line, not both", p.Name)
	case p.Name != "":
		by := o.ByName
		if by == nil {
			by = gpioreg.ByName
		}
		if pin := by(p.Name); pin != nil {
			return pin, nil
		}
		return nil, fmt.Errorf("gpio %q: no such line (is host.Init done, and is the line named in the device tree?)", p.Name)
	}
	if p.Line < 0 {
		return nil, fmt.Errorf("gpio %s: negative line", p)
	}
	by := o.ByChipLine
	if by == nil {
		by = chipLine
	}
	pin, err := by(p.Chip, p.Line)
	if err != nil {
		return nil, fmt.Errorf("gpio %s: %w", p, err)
	}
	return pin, nil
}

// chipLine finds a line through the GPIO character device.
func chipLine(chip string, line int) (gpio.PinIO, error) {
	want := strings.TrimPrefix(chip, "/dev/")
	for _, c := range gpioioctl.Chips {
		if c.Name() == want || strings.TrimPrefix(c.Path(), "/dev/") == want {
			if l := c.ByNumber(line); l != nil {
				return l, nil
			}
			return nil, fmt.Errorf("no line %d (the chip has %d)", line, c.LineCount())
		}
	}
	return nil, fmt.Errorf("chip %q not found", chip)
}

// Pull maps a line's bias onto gpio.Pull: "up", "down", "none" (float);
// "" leaves the hardware's setting (gpio.PullNoChange).
func Pull(p Line) gpio.Pull {
	switch p.Pull {
	case "up":
		return gpio.PullUp
	case "down":
		return gpio.PullDown
	case "none":
		return gpio.Float
	}
	return gpio.PullNoChange
}

// Level is the electrical level that means "active" (on) for p.
func Level(p Line, active bool) gpio.Level {
	return gpio.Level(active != p.ActiveLow)
}

// Active reports whether the electrical level l means "active" for p.
func Active(p Line, l gpio.Level) bool {
	return bool(l) != p.ActiveLow
}
