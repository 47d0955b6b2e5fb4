package config

import (
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/physic"
)

func TestParseDistance(t *testing.T) {
	good := []struct {
		in   string
		want Distance
	}{
		{"13mm", 13 * Millimetre},
		{"1.2 mm", 1200 * Micrometre},
		{"0.5um", 500 * Nanometre},
		{"0.5µm", 500 * Nanometre}, // micro sign U+00B5
		{"0.5μm", 500 * Nanometre}, // Greek mu U+03BC
		{"500nm", 500 * Nanometre},
		{"1.3cm", 13 * Millimetre},
		{"0.08m", 80 * Millimetre},
		{"-2mm", -2 * Millimetre},
		{"+2mm", 2 * Millimetre},
		{".5mm", 500 * Micrometre},
		{"1e-3mm", Micrometre},
		{"1.5e3um", 1500 * Micrometre},
		{"0", 0},
		{"0.0", 0},
		{"  7mm  ", 7 * Millimetre},
		{"0.0004nm", 0}, // rounds to the nanometre
		{"0.5nm", Nanometre},
		{"-0.5nm", -Nanometre},
	}
	for _, tc := range good {
		got, err := ParseDistance(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDistance(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, want string }{
		{"13", `want a distance like "13mm", got "13" (missing unit)`},
		{"fast", `got "fast"`},
		{"13 furlong", `unknown unit "furlong"`},
		{"13mm/s", `unknown unit "mm/s"`},
		{"", `want a distance like "13mm"`},
		{"mm", `got "mm"`},
		{"1..2mm", `got "1..2mm"`},
		{"1e999999999mm", "exponent out of range"},
		{"99999999999999mm", "out of range"},
		{"1-2mm", `got "1-2mm"`},
		{"0x10mm", `got "0x10mm"`},
	}
	for _, tc := range bad {
		_, err := ParseDistance(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDistance(%q) error = %v; want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestParseOtherUnits(t *testing.T) {
	type result struct {
		v   int64
		err error
	}
	sp := func(s string) result { v, err := ParseSpeed(s); return result{int64(v), err} }
	ac := func(s string) result { v, err := ParseAcceleration(s); return result{int64(v), err} }
	cu := func(s string) result { v, err := ParseCurrent(s); return result{int64(v), err} }
	du := func(s string) result { v, err := ParseDuration(s); return result{int64(v), err} }
	good := []struct {
		name string
		f    func(string) result
		in   string
		want int64
	}{
		{"speed", sp, "20mm/s", int64(20 * physic.MilliMetre)},
		{"speed", sp, "500 um/s", int64(500 * physic.MicroMetre)},
		{"speed", sp, "0.5µm/s", int64(500 * physic.NanoMetre)},
		{"speed", sp, "0.02m/s", int64(20 * physic.MilliMetre)},
		{"accel", ac, "200mm/s^2", 200e6},
		{"accel", ac, "200mm/s2", 200e6},
		{"accel", ac, "200mm/s²", 200e6},
		{"accel", ac, "10m/s^2", 10e9},
		{"current", cu, "800mA", int64(800 * physic.MilliAmpere)},
		{"current", cu, "1.5A", int64(1500 * physic.MilliAmpere)},
		{"current", cu, "800 mA", int64(800 * physic.MilliAmpere)},
		{"current", cu, "250µA", int64(250 * physic.MicroAmpere)},
		{"duration", du, "15ms", int64(15 * time.Millisecond)},
		{"duration", du, "15 ms", int64(15 * time.Millisecond)},
		{"duration", du, "1m30s", int64(90 * time.Second)},
		{"duration", du, "250µs", int64(250 * time.Microsecond)},
		{"duration", du, "250us", int64(250 * time.Microsecond)},
		{"duration", du, "0", 0},
	}
	for _, tc := range good {
		r := tc.f(tc.in)
		if r.err != nil || r.v != tc.want {
			t.Errorf("%s %q = %d, %v; want %d", tc.name, tc.in, r.v, r.err, tc.want)
		}
	}
	bad := []struct {
		name string
		f    func(string) result
		in   string
		want string
	}{
		{"speed", sp, "fast", `want a speed like "20mm/s", got "fast"`},
		{"speed", sp, "20mm", `unknown unit "mm"`},
		{"speed", sp, "20", "missing unit"},
		{"speed", sp, "20kph", `unknown unit "kph"`},
		{"accel", ac, "200mm/s", `want an acceleration like "200mm/s^2"`},
		{"accel", ac, "200mm/s^3", `unknown unit`},
		{"current", cu, "800", `want a current like "800mA"`},
		{"current", cu, "800mV", `unknown unit "mV"`},
		{"duration", du, "15", `want a duration like "15ms", got "15"`},
		{"duration", du, "soon", `got "soon"`},
		{"duration", du, "15 parsecs", `got "15 parsecs"`},
	}
	for _, tc := range bad {
		r := tc.f(tc.in)
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%s %q error = %v; want it to contain %q", tc.name, tc.in, r.err, tc.want)
		}
	}
}

func TestFormatUnits(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{Distance(13 * Millimetre).String(), "13mm"},
		{Distance(1234567 * Nanometre).String(), "1.234567mm"},
		{Distance(500 * Nanometre).String(), "500nm"},
		{Distance(2500 * Nanometre).String(), "2.5um"},
		{Distance(0).String(), "0mm"},
		{Distance(-2 * Millimetre).String(), "-2mm"},
		{Distance(-1).String(), "-1nm"},
		{(40 * MillimetrePerSecond).String(), "40mm/s"},
		{(500 * MicrometrePerSecond).String(), "500um/s"},
		{(400 * MillimetrePerSecond2).String(), "400mm/s^2"},
		{(10 * MetrePerSecond2).String(), "10m/s^2"},
		{(800 * Milliampere).String(), "800mA"},
		{(1500 * Milliampere).String(), "1.5A"},
		{Duration(15 * time.Millisecond).String(), "15ms"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	// Every formatted value parses back exactly.
	for _, v := range []int64{0, 1, -1, 999, 1000, 1001, 123456789, -987654321, 1 << 62, -(1 << 62), 9223372036854775807, -9223372036854775807} {
		d, err := ParseDistance(Distance(v).String())
		if err != nil || int64(d) != v {
			t.Errorf("distance %d: %q -> %d, %v", v, Distance(v).String(), d, err)
		}
		s, err := ParseSpeed(Speed(v).String())
		if err != nil || int64(s) != v {
			t.Errorf("speed %d: %q -> %d, %v", v, Speed(v).String(), s, err)
		}
		a, err := ParseAcceleration(Acceleration(v).String())
		if err != nil || int64(a) != v {
			t.Errorf("acceleration %d: %q -> %d, %v", v, Acceleration(v).String(), a, err)
		}
		c, err := ParseCurrent(Current(v).String())
		if err != nil || int64(c) != v {
			t.Errorf("current %d: %q -> %d, %v", v, Current(v).String(), c, err)
		}
	}
}

func TestAccessors(t *testing.T) {
	d := Distance(1500 * Micrometre)
	if d.D() != 1500*physic.MicroMetre || d.UM() != 1500 || d.MM() != 1.5 {
		t.Errorf("distance accessors: %v %v %v", d.D(), d.UM(), d.MM())
	}
	s := 40 * MillimetrePerSecond
	if s.S() != 40*physic.MilliMetrePerSecond || s.MMPerS() != 40 || s.UMPerS() != 40000 {
		t.Errorf("speed accessors: %v %v %v", s.S(), s.MMPerS(), s.UMPerS())
	}
	a := 400 * MillimetrePerSecond2
	if a.MMPerS2() != 400 || a.UMPerS2() != 400000 {
		t.Errorf("acceleration accessors: %v %v", a.MMPerS2(), a.UMPerS2())
	}
	c := 800 * Milliampere
	if c.I() != 800*physic.MilliAmpere || c.MA() != 800 {
		t.Errorf("current accessors: %v %v", c.I(), c.MA())
	}
	du := Duration(1500 * time.Millisecond)
	if du.D() != 1500*time.Millisecond || du.Seconds() != 1.5 {
		t.Errorf("duration accessors: %v %v", du.D(), du.Seconds())
	}
	var fd Distance
	if err := fd.Set("2mm"); err != nil || fd != 2*Millimetre {
		t.Errorf("Set: %v %v", fd, err)
	}
	ax := Axis{MicrostepsPerUM: 0.2}
	if n := ax.ToMicrosteps(80 * physic.MilliMetre); n != 16000 {
		t.Errorf("ToMicrosteps = %d, want 16000", n)
	}
	if d := ax.FromMicrosteps(16000); d != 80*physic.MilliMetre {
		t.Errorf("FromMicrosteps = %v, want 80mm", d)
	}
}
