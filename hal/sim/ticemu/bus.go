package ticemu

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

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
//
// A timed bus (NewTimedBus) advances its clock by each transfer's time on
// the wire (WireTime) at the bus's speed before the device sees it, so a
// device acts at the transfer's STOP and a read returns the device's state
// at that instant. Devices on a timed bus must not time their transfers
// themselves (pca9685emu.New, not NewTimed).
type Bus struct {
	mu     sync.Mutex
	devs   map[uint16]Device
	speed  physic.Frequency
	clock  Advancer // nil: transfers take no time
	busy   time.Duration
	closed bool
}

// Advancer is a clock that can be moved forward (hal/sim.Clock).
type Advancer interface{ Advance(time.Duration) }

// WireTime is how long one transfer occupies an I²C bus at speed: START,
// the address byte and every data byte with its acknowledge bit (9 bit
// times each), a repeated START and a second address byte when it both
// writes and reads, and STOP. Clock stretching and the host's own latency
// between transfers are not counted. speed <= 0 is 100 kHz.
func WireTime(nw, nr int, speed physic.Frequency) time.Duration {
	if speed <= 0 {
		speed = 100 * physic.KiloHertz
	}
	bits := 9*(1+nw+nr) + 2
	if nw > 0 && nr > 0 {
		bits += 1 + 9
	}
	return time.Duration(int64(bits) * int64(time.Second) / int64(speed/physic.Hertz))
}

var _ i2c.BusCloser = (*Bus)(nil)

// NewBus returns an empty bus running at 100 kHz whose transfers take no
// time.
func NewBus() *Bus {
	return &Bus{devs: map[uint16]Device{}, speed: 100 * physic.KiloHertz}
}

// NewTimedBus returns an empty bus running at 100 kHz (standard mode, the
// Linux default) whose transfers advance clock by their time on the wire at
// the bus's speed (SetSpeed changes it).
func NewTimedBus(clock Advancer) *Bus {
	b := NewBus()
	b.clock = clock
	return b
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
		if b.clock != nil { // START, the address byte NACKed, STOP
			b.advance(WireTime(0, 0, b.speed))
		}
		return fmt.Errorf("ticemu: i2c address 0x%02X: no device answered: %w", addr, ErrNACK)
	}
	if b.clock != nil {
		b.advance(WireTime(len(w), len(r), b.speed))
	}
	if err := d.I2CTx(w, r); err != nil {
		return fmt.Errorf("ticemu: i2c address 0x%02X: %w", addr, err)
	}
	return nil
}

// advance takes d of bus time on the clock; b.mu is held.
func (b *Bus) advance(d time.Duration) {
	b.busy += d
	b.clock.Advance(d)
}

// Busy is the total wire time of a timed bus's transfers so far.
func (b *Bus) Busy() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.busy
}

// SetSpeed implements i2c.Bus. The emulated bus accepts 10 kHz to 1 MHz (the
// Tic supports standard and fast mode); a timed bus times its transfers at
// this speed, an untimed one ignores it.
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
