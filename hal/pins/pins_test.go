package pins

import (
	"errors"
	"strings"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

func TestOpenByNameAndChipLine(t *testing.T) {
	named := &gpiotest.Pin{N: "GPIO17"}
	line5 := &gpiotest.Pin{N: "gpiochip1:5"}
	o := Opener{
		ByName: func(n string) gpio.PinIO {
			if n == "GPIO17" {
				return named
			}
			return nil
		},
		ByChipLine: func(chip string, line int) (gpio.PinIO, error) {
			if chip == "/dev/gpiochip1" && line == 5 {
				return line5, nil
			}
			return nil, errors.New("no such line")
		},
	}
	if p, err := o.Open(Line{Name: "GPIO17"}); err != nil || p != named {
		t.Fatalf("by name: %v, %v", p, err)
	}
	if p, err := o.Open(Line{Chip: "/dev/gpiochip1", Line: 5}); err != nil || p != line5 {
		t.Fatalf("by chip: %v, %v", p, err)
	}
	for _, tc := range []struct {
		p    Line
		want string
	}{
		{Line{Name: "GPIO99"}, `gpio "GPIO99": no such line`},
		{Line{Chip: "gpiochip7", Line: 1}, "gpio gpiochip7:1: no such line"},
		{Line{}, "no pin"},
		{Line{Name: "A", Chip: "gpiochip0"}, "not both"},
		{Line{Chip: "gpiochip0", Line: -1}, "negative"},
	} {
		if _, err := o.Open(tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v, want %q", tc.p, err, tc.want)
		}
	}
}

// TestOpenRealRegistries runs the zero Opener without host.Init: nothing is
// registered, so both forms fail with a clear error and nothing panics.
func TestOpenRealRegistries(t *testing.T) {
	if _, err := Open(Line{Name: "PAPSCAN_NO_SUCH_LINE"}); err == nil {
		t.Error("unknown name opened")
	}
	if _, err := Open(Line{Chip: "gpiochip999", Line: 3}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown chip: %v", err)
	}
}

func TestPullAndLevel(t *testing.T) {
	for s, want := range map[string]gpio.Pull{"up": gpio.PullUp, "down": gpio.PullDown, "none": gpio.Float, "": gpio.PullNoChange} {
		if got := Pull(Line{Name: "X", Pull: s}); got != want {
			t.Errorf("Pull(%q) = %s, want %s", s, got, want)
		}
	}
	low := Line{Name: "X", ActiveLow: true}
	if Level(low, true) != gpio.Low || Level(low, false) != gpio.High || !Active(low, gpio.Low) || Active(low, gpio.High) {
		t.Error("active-low mapping wrong")
	}
	high := Line{Name: "X"}
	if Level(high, true) != gpio.High || !Active(high, gpio.High) {
		t.Error("active-high mapping wrong")
	}
}
