package ticemu

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
)

// ErrNACK is wrapped by every error that stands for a transfer the addressed
// device did not acknowledge: no device at the address, or an injected NACK.
var ErrNACK = errors.New("i2c: NACK")

// ErrClosed is returned by Tx after Close.
var ErrClosed = errors.New("ticemu: bus closed")

// Device is an emulated I²C target: it handles one transfer (a write of w,
// then after a repeated start a read into r). Tic implements it; other
// emulators (hal/sim/dacemu, hal/sim/pca9685emu) attach to the same Bus.
type Device interface {
	I2CTx(w, r []byte) error
}

// Bus is an emulated I²C bus with emulated devices (Tic controllers, and any
// other Device) attached by 7-bit address. It implements i2c.Bus, so periph's tic driver (and anything else
// speaking I²C) runs on it unchanged. Transfers are serialised, as on a real
// bus. A Bus is safe for concurrent use.
type Bus struct {
	mu     sync.Mutex
	devs   map[uint16]Device
	speed  physic.Frequency
	closed bool
}

var _ i2c.BusCloser = (*Bus)(nil)

// NewBus returns an empty bus running at 100 kHz.
func NewBus() *Bus {
	return &Bus{devs: map[uint16]Device{}, speed: 100 * physic.KiloHertz}
}

// Attach connects d to the bus at the 7-bit address addr. It fails if addr is
// not a 7-bit address, d is nil, or the address is taken.
func (b *Bus) Attach(addr uint16, d Device) error {
	if addr > 0x7F {
		return fmt.Errorf("ticemu: address 0x%X is not a 7-bit I2C address", addr)
	}
	if t, ok := d.(*Tic); d == nil || ok && t == nil {
		return errors.New("ticemu: Attach: nil device")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.devs[addr]; ok {
		return fmt.Errorf("ticemu: address 0x%02X already in use", addr)
	}
	b.devs[addr] = d
	return nil
}

// Detach disconnects the device at addr (a cable pulled); later transfers to
// it are NACKed.
func (b *Bus) Detach(addr uint16) {
	b.mu.Lock()
	delete(b.devs, addr)
	b.mu.Unlock()
}

// Tx implements i2c.Bus: it writes w to, then reads len(r) bytes from, the
// device at addr. A transfer to an address with no device fails with an
// error wrapping ErrNACK that names the address. Malformed transfers return an
// error; Tx never panics.
func (b *Bus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	d, ok := b.devs[addr]
	if !ok {
		return fmt.Errorf("ticemu: i2c address 0x%02X: no device answered: %w", addr, ErrNACK)
	}
	if err := d.I2CTx(w, r); err != nil {
		return fmt.Errorf("ticemu: i2c address 0x%02X: %w", addr, err)
	}
	return nil
}

// SetSpeed implements i2c.Bus. The emulated bus accepts 10 kHz to 1 MHz (the
// Tic supports standard and fast mode) and otherwise ignores the speed.
func (b *Bus) SetSpeed(f physic.Frequency) error {
	if f < 10*physic.KiloHertz || f > physic.MegaHertz {
		return fmt.Errorf("ticemu: unsupported I2C speed %s", f)
	}
	b.mu.Lock()
	b.speed = f
	b.mu.Unlock()
	return nil
}

// String implements i2c.Bus.
func (b *Bus) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	addrs := make([]string, 0, len(b.devs))
	for a := range b.devs {
		addrs = append(addrs, fmt.Sprintf("0x%02X", a))
	}
	sort.Strings(addrs)
	return "ticemu.Bus(" + strings.Join(addrs, ",") + ")"
}

// Close implements i2c.BusCloser; later transfers fail with ErrClosed.
func (b *Bus) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}
