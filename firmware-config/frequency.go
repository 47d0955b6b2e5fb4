package config

import (
	"periph.io/x/conn/v3/physic"

	"go.yaml.in/yaml/v3"
)

// Frequency is a frequency, stored like physic.Frequency in microhertz.
//
// YAML: "1kHz", "1000Hz", "1.5 kHz", "2MHz".
type Frequency physic.Frequency

// Hertz and Kilohertz, for building configurations in code.
const (
	Hertz     Frequency = Frequency(physic.Hertz)
	Kilohertz Frequency = Frequency(physic.KiloHertz)
)

var (
	frequencyUnits = []unit{{"uHz", 1}, {"µHz", 1}, {"mHz", 1e3}, {"Hz", 1e6}, {"kHz", 1e9}, {"MHz", 1e12}}
	frequencyOut   = []unit{{"MHz", 1e12}, {"kHz", 1e9}, {"Hz", 1e6}, {"mHz", 1e3}, {"uHz", 1}}
)

// ParseFrequency parses a frequency like "1kHz".
func ParseFrequency(s string) (Frequency, error) {
	v, err := parseQuantity(s, frequencyUnits, "frequency", "1kHz")
	return Frequency(v), err
}

// F returns the frequency as a periph physic.Frequency.
func (f Frequency) F() physic.Frequency { return physic.Frequency(f) }

// Hz returns the frequency in hertz.
func (f Frequency) Hz() float64 { return float64(f) / 1e6 }

// String formats the frequency the way it is written in YAML, e.g. "1kHz".
func (f Frequency) String() string { return formatQuantity(int64(f), frequencyOut, "Hz") }

// Set parses s; it makes *Frequency a flag.Value.
func (f *Frequency) Set(s string) error {
	v, err := ParseFrequency(s)
	if err == nil {
		*f = v
	}
	return err
}

// MarshalYAML implements yaml.Marshaler.
func (f Frequency) MarshalYAML() (any, error) { return f.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (f *Frequency) UnmarshalYAML(n *yaml.Node) error {
	v, err := unmarshalQuantity(n, frequencyUnits, "frequency", "1kHz")
	if err == nil {
		*f = Frequency(v)
	}
	return err
}
