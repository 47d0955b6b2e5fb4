package config

import (
	"strings"
	"testing"

	"periph.io/x/conn/v3/physic"
)

func TestFrequency(t *testing.T) {
	for s, want := range map[string]physic.Frequency{
		"1kHz": physic.KiloHertz, "1.5 kHz": 1500 * physic.Hertz, "50Hz": 50 * physic.Hertz,
		"2MHz": 2 * physic.MegaHertz, "0": 0, "250mHz": 250 * physic.MilliHertz,
	} {
		f, err := ParseFrequency(s)
		if err != nil || f.F() != want {
			t.Errorf("ParseFrequency(%q) = %v, %v; want %v", s, f.F(), err, want)
		}
		if back, err := ParseFrequency(f.String()); err != nil || back != f {
			t.Errorf("round trip of %q via %q: %v, %v", s, f.String(), back, err)
		}
	}
	for _, s := range []string{"1kHZ", "1000", "kHz", "1e99Hz", "-"} {
		if _, err := ParseFrequency(s); err == nil || !strings.Contains(err.Error(), "frequency like \"1kHz\"") {
			t.Errorf("ParseFrequency(%q) = %v", s, err)
		}
	}
}
