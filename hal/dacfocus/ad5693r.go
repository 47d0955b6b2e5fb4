package dacfocus

import (
	"fmt"

	"periph.io/x/conn/v3/i2c"
)

// AD5693R commands and control register bits (see the package doc).
const (
	CmdWriteInput       = 0x10
	CmdUpdateDAC        = 0x20
	CmdWriteDACAndInput = 0x30
	CmdWriteControl     = 0x40

	CtrlReset      = 1 << 15
	CtrlPowerDown  = 3 << 13 // D14:D13; 00 is normal operation
	CtrlRefDisable = 1 << 12
	CtrlGain2      = 1 << 11
)

// AD5693R is the DAC on periph's I²C connection. It is not safe for
// concurrent use; Piezo serialises access.
type AD5693R struct {
	dev i2c.Dev
}

// NewAD5693R addresses the DAC at addr on bus and writes its control
// register: normal operation, internal reference on, gain 1 or 2.
func NewAD5693R(bus i2c.Bus, addr uint16, gain2 bool) (*AD5693R, error) {
	if bus == nil {
		return nil, fmt.Errorf("ad5693r: nil bus")
	}
	if addr > 0x7F {
		return nil, fmt.Errorf("ad5693r: 0x%X is not a 7-bit address", addr)
	}
	d := &AD5693R{dev: i2c.Dev{Bus: bus, Addr: addr}}
	var ctrl uint16
	if gain2 {
		ctrl |= CtrlGain2
	}
	if err := d.write(CmdWriteControl, ctrl); err != nil {
		return nil, fmt.Errorf("ad5693r at 0x%02X: write control register: %w", addr, err)
	}
	return d, nil
}

func (d *AD5693R) write(cmd byte, v uint16) error {
	return d.dev.Tx([]byte{cmd, byte(v >> 8), byte(v)}, nil)
}

// Write sets the output to code at once (write DAC and input register).
func (d *AD5693R) Write(code uint16) error { return d.write(CmdWriteDACAndInput, code) }

// ReadBack reads the input register.
func (d *AD5693R) ReadBack() (uint16, error) {
	var b [2]byte
	if err := d.dev.Tx(nil, b[:]); err != nil {
		return 0, err
	}
	return uint16(b[0])<<8 | uint16(b[1]), nil
}
