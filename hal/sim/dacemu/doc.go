// Package dacemu emulates an Analog Devices AD5693R 16-bit I²C DAC driving a
// piezo focus stage, for the simulated robot and for tests of
// hal/dacfocus. It attaches to a ticemu.Bus (it implements ticemu.Device)
// and decodes the DAC's three-byte writes (command, data MSB, data LSB) and
// two-byte read-back exactly as the datasheet describes (see hal/dacfocus).
//
// The stage follows the DAC's output voltage with a first-order lag: after a
// step its position approaches the new target as 1 - exp(-t/Tau). Position
// is the true stage position at the clock's now (what the simulated camera
// images). Faults to inject: NACKs, a powered-down or reset DAC.
package dacemu
