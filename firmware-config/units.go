package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
	"periph.io/x/conn/v3/physic"
)

// This file defines the physical-quantity types used by the configuration.
// Each is written in YAML as a number followed by a unit ("13mm", "0.5 µm",
// "20mm/s", "200mm/s^2", "800mA", "15ms") and marshals back to the same form.
// Values are stored as exact integers of nano-units, like periph's physic
// package, so parsing and printing never lose precision.

// Distance is a length, stored like physic.Distance in nanometres.
//
// YAML: "13mm", "1.2 mm", "0.5um", "0.5µm", "500nm", "1.3cm", "0.01m".
// A bare 0 is accepted (zero needs no unit); any other number needs a unit.
type Distance physic.Distance

// Speed is a linear speed, stored like physic.Speed in nanometres per second.
//
// YAML: "20mm/s", "500um/s", "0.02 m/s".
type Speed physic.Speed

// Acceleration is a linear acceleration in nanometres per second squared.
// periph has no acceleration type.
//
// YAML: "200mm/s^2", "200mm/s2", "200mm/s²", "0.2m/s^2".
type Acceleration int64

// Current is an electric current, stored like physic.ElectricCurrent in
// nanoamperes.
//
// YAML: "800mA", "1.5A", "800 mA".
type Current physic.ElectricCurrent

// Duration is a time.Duration written the way time.ParseDuration reads it.
//
// YAML: "15ms", "1.5s", "5m", "250us", "250µs", "1m30s"; a bare 0 is
// accepted.
type Duration time.Duration

// Well-known values, for building configurations in code.
const (
	Nanometre  Distance = 1
	Micrometre Distance = 1000 * Nanometre
	Millimetre Distance = 1000 * Micrometre

	MillimetrePerSecond Speed = Speed(physic.MilliMetre) // per second
	MicrometrePerSecond Speed = Speed(physic.MicroMetre) // per second

	MillimetrePerSecond2 Acceleration = 1000000
	MetrePerSecond2      Acceleration = 1000 * MillimetrePerSecond2

	Milliampere Current = Current(physic.MilliAmpere)
	Ampere      Current = Current(physic.Ampere)
)

// unit is one spelling of a unit and its size in nano-units of the base.
type unit struct {
	name string
	nano int64
}

// Spellings accepted on input. Both the micro sign (U+00B5) and the Greek
// small letter mu (U+03BC) are accepted for "micro", as is ASCII "u".
var (
	distanceUnits = []unit{
		{"nm", 1}, {"um", 1e3}, {"µm", 1e3}, {"μm", 1e3},
		{"mm", 1e6}, {"cm", 1e7}, {"m", 1e9},
	}
	speedUnits = withSuffix(distanceUnits, "/s")
	accelUnits = append(append(withSuffix(distanceUnits, "/s^2"),
		withSuffix(distanceUnits, "/s2")...), withSuffix(distanceUnits, "/s²")...)
	currentUnits = []unit{
		{"nA", 1}, {"uA", 1e3}, {"µA", 1e3}, {"μA", 1e3}, {"mA", 1e6}, {"A", 1e9},
	}
)

// Units used on output, largest first; the largest unit not bigger than the
// value is used, the last one for zero and tiny values.
var (
	distanceOut = []unit{{"mm", 1e6}, {"um", 1e3}, {"nm", 1}}
	speedOut    = []unit{{"mm/s", 1e6}, {"um/s", 1e3}, {"nm/s", 1}}
	accelOut    = []unit{{"m/s^2", 1e9}, {"mm/s^2", 1e6}, {"um/s^2", 1e3}, {"nm/s^2", 1}}
	currentOut  = []unit{{"A", 1e9}, {"mA", 1e6}, {"uA", 1e3}, {"nA", 1}}
)

func withSuffix(us []unit, suffix string) []unit {
	out := make([]unit, len(us))
	for i, u := range us {
		out[i] = unit{u.name + suffix, u.nano}
	}
	return out
}

// UnitError is the error of a malformed quantity. Its message says what was
// expected, with an example, and what was found; the decoder prefixes the
// key path.
type UnitError struct {
	Kind    string // "distance", "speed", ...
	Example string // e.g. "20mm/s"
	Got     string // the offending text, or a description of a non-scalar
	Reason  string // optional detail, e.g. "out of range"
}

func (e *UnitError) Error() string {
	article := "a"
	if strings.ContainsRune("aeiou", rune(e.Kind[0])) {
		article = "an"
	}
	msg := fmt.Sprintf("want %s %s like %q, got %s", article, e.Kind, e.Example, e.Got)
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg
}

// maxExponent bounds the decimal exponent accepted in numbers, so that
// hostile input like "1e999999999mm" cannot make big.Rat allocate gigabytes.
const maxExponent = 40

// parseQuantity parses "<number>[ ]<unit>" into nano-units.
func parseQuantity(s string, units []unit, kind, example string) (int64, error) {
	bad := func(reason string) error {
		return &UnitError{Kind: kind, Example: example, Got: strconv.Quote(s), Reason: reason}
	}
	t := strings.TrimSpace(s)
	// Split number and unit: the number is the longest prefix made of
	// characters that can appear in a decimal number.
	i := 0
	for i < len(t) {
		c := t[i]
		if c >= '0' && c <= '9' || c == '.' || c == '+' || c == '-' {
			i++
			continue
		}
		if (c == 'e' || c == 'E') && i > 0 && i+1 < len(t) &&
			(t[i+1] >= '0' && t[i+1] <= '9' || t[i+1] == '+' || t[i+1] == '-') {
			i++
			continue
		}
		break
	}
	num, u := t[:i], strings.TrimLeftFunc(t[i:], unicode.IsSpace)
	if num == "" {
		return 0, bad("")
	}
	if len(num) > 64 {
		return 0, bad("number too long")
	}
	if k := strings.IndexAny(num, "eE"); k >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(num[k+1:], "+"))
		if err != nil || e > maxExponent || e < -maxExponent {
			return 0, bad("exponent out of range")
		}
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, bad("")
	}
	var scale int64
	if u == "" {
		if r.Sign() != 0 {
			return 0, bad("missing unit")
		}
		return 0, nil
	}
	for _, cand := range units {
		if cand.name == u {
			scale = cand.nano
			break
		}
	}
	if scale == 0 {
		return 0, bad("unknown unit " + strconv.Quote(u))
	}
	r.Mul(r, new(big.Rat).SetInt64(scale))
	// Round half away from zero to an integer number of nano-units.
	n, d := r.Num(), r.Denom()
	q, m := new(big.Int).QuoRem(n, d, new(big.Int))
	m.Abs(m).Lsh(m, 1)
	if m.Cmp(d) >= 0 {
		if n.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() || q.Int64() == math.MinInt64 {
		return 0, bad("out of range")
	}
	return q.Int64(), nil
}

// formatQuantity prints v nano-units exactly, in the largest unit of outs
// whose size does not exceed |v| (the last unit for smaller values), with
// trailing zeros of the fraction removed. Zero is printed as "0" + zeroUnit.
func formatQuantity(v int64, outs []unit, zeroUnit string) string {
	neg := v < 0
	a := uint64(v)
	if neg {
		a = -a
	}
	u := outs[len(outs)-1]
	if a == 0 {
		return "0" + zeroUnit
	} else {
		for _, cand := range outs {
			if a >= uint64(cand.nano) {
				u = cand
				break
			}
		}
	}
	ip, fp := a/uint64(u.nano), a%uint64(u.nano)
	s := strconv.FormatUint(ip, 10)
	if fp != 0 {
		digits := len(strconv.FormatInt(u.nano, 10)) - 1
		f := fmt.Sprintf("%0*d", digits, fp)
		s += "." + strings.TrimRight(f, "0")
	}
	if neg {
		s = "-" + s
	}
	return s + u.name
}

// scalarText returns the text of a scalar node, or a description of a
// non-scalar node for error messages.
func scalarText(n *yaml.Node) (string, error) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil
	case yaml.MappingNode:
		return "", errors.New("a mapping")
	case yaml.SequenceNode:
		return "", errors.New("a list")
	default:
		return "", errors.New("an empty document")
	}
}

func unmarshalQuantity(n *yaml.Node, units []unit, kind, example string) (int64, error) {
	s, err := scalarText(n)
	if err != nil {
		return 0, &UnitError{Kind: kind, Example: example, Got: err.Error()}
	}
	return parseQuantity(s, units, kind, example)
}

// ---- Distance ----

// ParseDistance parses a distance like "13mm" or "0.5µm".
func ParseDistance(s string) (Distance, error) {
	v, err := parseQuantity(s, distanceUnits, "distance", "13mm")
	return Distance(v), err
}

// D returns the distance as a periph physic.Distance.
func (d Distance) D() physic.Distance { return physic.Distance(d) }

// UM returns the distance in micrometres.
func (d Distance) UM() float64 { return float64(d) / 1e3 }

// MM returns the distance in millimetres.
func (d Distance) MM() float64 { return float64(d) / 1e6 }

// String formats the distance the way it is written in YAML, e.g. "13mm".
func (d Distance) String() string { return formatQuantity(int64(d), distanceOut, "mm") }

// Set parses s; it makes *Distance a flag.Value.
func (d *Distance) Set(s string) error {
	v, err := ParseDistance(s)
	if err == nil {
		*d = v
	}
	return err
}

// MarshalYAML implements yaml.Marshaler.
func (d Distance) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Distance) UnmarshalYAML(n *yaml.Node) error {
	v, err := unmarshalQuantity(n, distanceUnits, "distance", "13mm")
	if err == nil {
		*d = Distance(v)
	}
	return err
}

// ---- Speed ----

// ParseSpeed parses a speed like "20mm/s".
func ParseSpeed(s string) (Speed, error) {
	v, err := parseQuantity(s, speedUnits, "speed", "20mm/s")
	return Speed(v), err
}

// S returns the speed as a periph physic.Speed.
func (sp Speed) S() physic.Speed { return physic.Speed(sp) }

// MMPerS returns the speed in millimetres per second.
func (sp Speed) MMPerS() float64 { return float64(sp) / 1e6 }

// UMPerS returns the speed in micrometres per second.
func (sp Speed) UMPerS() float64 { return float64(sp) / 1e3 }

// String formats the speed the way it is written in YAML, e.g. "20mm/s".
func (sp Speed) String() string { return formatQuantity(int64(sp), speedOut, "mm/s") }

// Set parses s; it makes *Speed a flag.Value.
func (sp *Speed) Set(s string) error {
	v, err := ParseSpeed(s)
	if err == nil {
		*sp = v
	}
	return err
}

// MarshalYAML implements yaml.Marshaler.
func (sp Speed) MarshalYAML() (any, error) { return sp.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (sp *Speed) UnmarshalYAML(n *yaml.Node) error {
	v, err := unmarshalQuantity(n, speedUnits, "speed", "20mm/s")
	if err == nil {
		*sp = Speed(v)
	}
	return err
}

// ---- Acceleration ----

// ParseAcceleration parses an acceleration like "200mm/s^2".
func ParseAcceleration(s string) (Acceleration, error) {
	v, err := parseQuantity(s, accelUnits, "acceleration", "200mm/s^2")
	return Acceleration(v), err
}

// MMPerS2 returns the acceleration in millimetres per second squared.
func (a Acceleration) MMPerS2() float64 { return float64(a) / 1e6 }

// UMPerS2 returns the acceleration in micrometres per second squared.
func (a Acceleration) UMPerS2() float64 { return float64(a) / 1e3 }

// String formats the acceleration the way it is written in YAML, e.g.
// "400mm/s^2".
func (a Acceleration) String() string { return formatQuantity(int64(a), accelOut, "mm/s^2") }

// Set parses s; it makes *Acceleration a flag.Value.
func (a *Acceleration) Set(s string) error {
	v, err := ParseAcceleration(s)
	if err == nil {
		*a = v
	}
	return err
}

// MarshalYAML implements yaml.Marshaler.
func (a Acceleration) MarshalYAML() (any, error) { return a.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (a *Acceleration) UnmarshalYAML(n *yaml.Node) error {
	v, err := unmarshalQuantity(n, accelUnits, "acceleration", "200mm/s^2")
	if err == nil {
		*a = Acceleration(v)
	}
	return err
}

// ---- Current ----

// ParseCurrent parses a current like "800mA".
func ParseCurrent(s string) (Current, error) {
	v, err := parseQuantity(s, currentUnits, "current", "800mA")
	return Current(v), err
}

// I returns the current as a periph physic.ElectricCurrent.
func (c Current) I() physic.ElectricCurrent { return physic.ElectricCurrent(c) }

// MA returns the current in milliamperes.
func (c Current) MA() float64 { return float64(c) / 1e6 }

// String formats the current the way it is written in YAML, e.g. "800mA".
func (c Current) String() string { return formatQuantity(int64(c), currentOut, "mA") }

// Set parses s; it makes *Current a flag.Value.
func (c *Current) Set(s string) error {
	v, err := ParseCurrent(s)
	if err == nil {
		*c = v
	}
	return err
}

// MarshalYAML implements yaml.Marshaler.
func (c Current) MarshalYAML() (any, error) { return c.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (c *Current) UnmarshalYAML(n *yaml.Node) error {
	v, err := unmarshalQuantity(n, currentUnits, "current", "800mA")
	if err == nil {
		*c = Current(v)
	}
	return err
}

// ---- Duration ----

// ParseDuration parses a duration like "15ms" (time.ParseDuration syntax;
// a space between number and unit is allowed).
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	// Allow "15 ms": drop blanks between a number and its unit.
	t = strings.Join(strings.Fields(t), "")
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, &UnitError{Kind: "duration", Example: "15ms", Got: strconv.Quote(s)}
	}
	return Duration(d), nil
}

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Seconds returns the duration in seconds.
func (d Duration) Seconds() float64 { return time.Duration(d).Seconds() }

// String formats the duration like time.Duration does, e.g. "15ms".
func (d Duration) String() string { return time.Duration(d).String() }

// Set parses s; it makes *Duration a flag.Value.
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err == nil {
		*d = v
	}
	return err
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalarText(n)
	if err != nil {
		return &UnitError{Kind: "duration", Example: "15ms", Got: err.Error()}
	}
	v, err := ParseDuration(s)
	if err == nil {
		*d = v
	}
	return err
}
