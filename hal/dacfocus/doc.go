// Package dacfocus implements hal.Focus for a piezo (or voice-coil) focus
// stage driven through a 16-bit I²C DAC, the Analog Devices AD5693R, whose
// output feeds the stage's amplifier: the stage's displacement is
// proportional to the DAC code, code 0 at 0 and code 65535 at the stage's
// full stroke (Options.FullScale).
//
// AD5693R register interface (datasheet "AD5693R/AD5692R/AD5691R/AD5693",
// Rev. C, https://www.analog.com/media/en/technical-documentation/data-sheets/AD5693R_5692R_5691R_5693.pdf,
// "Serial Interface" and "Control Register"): every write is three bytes
// after the address, a command byte then a 16-bit data word, MSB first.
//
//	command 0x10  write input register
//	command 0x20  update DAC register from the input register
//	command 0x30  write DAC and input register (used here: output changes at once)
//	command 0x40  write control register:
//	              D15 reset, D14:D13 power-down (00 normal operation),
//	              D12 REF (0: internal 2.5 V reference enabled),
//	              D11 gain (0: 0..VREF, 1: 0..2×VREF), D10:D0 zero
//
// A 2-byte read returns the input register, MSB first; the driver reads it
// back after every write and latches a bus fault on a mismatch. The 7-bit
// address is 0x4C (A0 low) or 0x4E (A0 high).
//
// Options.Backlash compensates the piezo's hysteresis by approaching every
// target from one side (a move from the other side overshoots first).
//
// The stage is open loop: Z is the commanded position; SetZ waits the
// configured settle time (a few time constants of the stage) before it
// returns, so the first frame is taken on a still specimen. Writes are never
// retried (a NACK latches a hal.FaultBus); the read-back is retried once.
package dacfocus
