package ticemu

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"papscan/hal/sim"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/tic"
)

const addr = tic.I2CAddr

func setup(t *testing.T, opts Options) (*sim.Clock, *Tic, *tic.Dev) {
	t.Helper()
	clk := sim.NewClock()
	emu := New(clk, opts)
	bus := NewBus()
	if err := bus.Attach(addr, emu); err != nil {
		t.Fatal(err)
	}
	dev, err := tic.NewI2C(bus, tic.TicT834, addr)
	if err != nil {
		t.Fatal(err)
	}
	return clk, emu, dev
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func get[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestPowerUpAndVariables(t *testing.T) {
	clk, _, dev := setup(t, Options{})
	u8 := get[uint8](t)
	b := get[bool](t)
	u32 := get[uint32](t)
	i32 := get[int32](t)

	if !b(dev.IsPositionUncertain()) {
		t.Error("power-up: position should be uncertain")
	}
	if !b(dev.HasError(tic.ErrorBitSafeStartViolation)) {
		t.Error("power-up: safe start violation expected")
	}
	if !b(dev.IsEnergized()) {
		t.Error("power-up: energized expected")
	}
	if s := get[tic.OperationState](t)(dev.GetOperationState()); s != tic.OperationStateSoftError {
		t.Errorf("operation state = %d", s)
	}
	if p := i32(dev.GetCurrentPosition()); p != 0 {
		t.Errorf("position = %d", p)
	}

	must(t, dev.SetMaxSpeed(12_345_678))
	must(t, dev.SetStartingSpeed(1000))
	must(t, dev.SetMaxAccel(54321))
	must(t, dev.SetMaxDecel(65432))
	must(t, dev.SetStepMode(tic.StepModeMicrostep8))
	must(t, dev.SetCurrentLimit(640*physic.MilliAmpere))
	must(t, dev.SetDecayMode(tic.DecayModeMixed25))
	if v := u32(dev.GetMaxSpeed()); v != 12_345_678 {
		t.Errorf("max speed %d", v)
	}
	if v := u32(dev.GetStartingSpeed()); v != 1000 {
		t.Errorf("starting speed %d", v)
	}
	if v := u32(dev.GetMaxAccel()); v != 54321 {
		t.Errorf("accel %d", v)
	}
	if v := u32(dev.GetMaxDecel()); v != 65432 {
		t.Errorf("decel %d", v)
	}
	if v := get[tic.StepMode](t)(dev.GetStepMode()); v != tic.StepModeMicrostep8 {
		t.Errorf("step mode %d", v)
	}
	if v := get[physic.ElectricCurrent](t)(dev.GetCurrentLimit()); v != 640*physic.MilliAmpere {
		t.Errorf("current limit %s", v)
	}
	if v := get[tic.DecayMode](t)(dev.GetDecayMode()); v != tic.DecayModeMixed25 {
		t.Errorf("decay %d", v)
	}
	if v := get[physic.ElectricPotential](t)(dev.GetVoltageIn()); v != 24*physic.Volt {
		t.Errorf("vin %s", v)
	}
	clk.Advance(1500 * time.Millisecond)
	if v := get[time.Duration](t)(dev.GetUpTime()); v != 1500*time.Millisecond {
		t.Errorf("uptime %s", v)
	}
	if v := get[tic.ResetCause](t)(dev.GetDeviceReset()); v != tic.ResetCausePowerUp {
		t.Errorf("reset cause %d", v)
	}
	if v := get[uint16](t)(dev.GetRCPulseWidth()); v != tic.InputNull {
		t.Errorf("rc %d", v)
	}
	if v := get[uint16](t)(dev.GetAnalogReading(tic.PinTX)); v != tic.InputNull {
		t.Errorf("analog %d", v)
	}
	if v := i32(dev.GetEncoderPosition()); v != 0 {
		t.Errorf("encoder %d", v)
	}
	s := get[[]uint8](t)(dev.GetSetting(SettingCommandTimeout, 2))
	if ms := int(s[0]) | int(s[1])<<8; ms != 1000 {
		t.Errorf("command timeout setting %d ms", ms)
	}

	// Command timeout fired during the 1.5 s without commands; errors
	// occurred is latched until read-and-clear.
	if v := u32(dev.GetErrorsOccurred()); v&(1<<tic.ErrorBitCommandTimeout) == 0 {
		t.Errorf("errors occurred %#x: want command timeout", v)
	}
	if v := u32(dev.GetErrorsOccurred()); v&(1<<tic.ErrorBitCommandTimeout) != 0 {
		t.Errorf("errors occurred not cleared: %#x", v)
	}

	must(t, dev.ExitSafeStart())
	if v := get[uint16](t)(dev.GetErrorStatus()); v != 0 {
		t.Fatalf("error status after exit safe start = %#x", v)
	}
	must(t, dev.HaltAndSetPosition(-1234))
	if p := i32(dev.GetCurrentPosition()); p != -1234 {
		t.Errorf("position = %d", p)
	}
	if b(dev.IsPositionUncertain()) {
		t.Error("halt and set position should clear position uncertain")
	}
	if s := get[tic.InputState](t)(dev.GetInputState()); s != tic.InputStateHalt {
		t.Errorf("input state %d", s)
	}
	must(t, dev.SetTargetPosition(-1000))
	if v := i32(dev.GetTargetPosition()); v != -1000 {
		t.Errorf("target position %d", v)
	}
	if m := get[tic.PlanningMode](t)(dev.GetPlanningMode()); m != tic.PlanningModeTargetPosition {
		t.Errorf("planning mode %d", m)
	}
	if v := i32(dev.GetInputAfterScaling()); v != -1000 {
		t.Errorf("input after scaling %d", v)
	}
	must(t, dev.SetTargetVelocity(-50000))
	if v := i32(dev.GetTargetVelocity()); v != -50000 {
		t.Errorf("target velocity %d", v)
	}
	must(t, dev.HaltAndHold())
	if m := get[tic.PlanningMode](t)(dev.GetPlanningMode()); m != tic.PlanningModeOff {
		t.Errorf("planning mode after halt %d", m)
	}
	if !b(dev.IsPositionUncertain()) {
		t.Error("halt and hold should set position uncertain")
	}
	_ = u8
}

// trapezoid is the textbook move time for distance d at max speed v and
// acceleration = deceleration a, from rest to rest.
func trapezoid(d, v, a float64) time.Duration {
	var s float64
	if d >= v*v/a {
		s = d/v + v/a
	} else {
		s = 2 * math.Sqrt(d/a)
	}
	return time.Duration(s * float64(time.Second))
}

// pollUntilStopped polls like a driver: every poll interval it feeds the
// command timeout and reads position and velocity, until at target and still.
func pollUntilStopped(t *testing.T, clk *sim.Clock, dev *tic.Dev, target int32, poll, limit time.Duration) time.Duration {
	t.Helper()
	start := clk.Now()
	for clk.Now().Sub(start) < limit {
		must(t, dev.ResetCommandTimeout())
		p := get[int32](t)(dev.GetCurrentPosition())
		v := get[int32](t)(dev.GetCurrentVelocity())
		if p == target && v == 0 {
			return clk.Now().Sub(start)
		}
		must(t, clk.Sleep(context.Background(), poll))
	}
	t.Fatalf("did not reach %d within %s", target, limit)
	return 0
}

func TestMoveFollowsTrapezoid(t *testing.T) {
	for _, tc := range []struct {
		name          string
		dist          int32
		speed, accel  uint32 // Tic units
		speedS, accS2 float64
	}{
		{"cruise", 10000, 20_000_000, 1_000_000, 2000, 10000},
		{"triangle", 300, 20_000_000, 1_000_000, 2000, 10000},
		{"reverse", -4000, 5_000_000, 200_000, 500, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const poll = 5 * time.Millisecond
			clk, emu, dev := setup(t, Options{StartSteps: 5000, TravelSteps: 20000})
			must(t, dev.SetMaxSpeed(tc.speed))
			must(t, dev.SetMaxAccel(tc.accel))
			must(t, dev.SetMaxDecel(tc.accel))
			must(t, dev.ExitSafeStart())
			phys0 := emu.PhysicalSteps()
			must(t, dev.SetTargetPosition(tc.dist))
			got := pollUntilStopped(t, clk, dev, tc.dist, poll, time.Minute)
			want := trapezoid(math.Abs(float64(tc.dist)), tc.speedS, tc.accS2)
			t.Logf("move took %s, trapezoid %s", got, want)
			if d := got - want; d < -poll-2*tick || d > poll+2*tick {
				t.Errorf("move took %s, trapezoid predicts %s", got, want)
			}
			if d := emu.PhysicalSteps() - phys0; math.Abs(d-float64(tc.dist)) > 1e-6 {
				t.Errorf("carriage moved %g full steps, want %d", d, tc.dist)
			}
			if emu.Moving() {
				t.Error("still moving")
			}
		})
	}
}

func TestStepModeScalesPhysicalMotion(t *testing.T) {
	clk, emu, dev := setup(t, Options{StartSteps: 100, TravelSteps: 1000})
	must(t, dev.SetStepMode(tic.StepModeMicrostep8))
	must(t, dev.SetMaxSpeed(80_000_000))
	must(t, dev.SetMaxAccel(8_000_000))
	must(t, dev.ExitSafeStart())
	must(t, dev.SetTargetPosition(800))
	pollUntilStopped(t, clk, dev, 800, 5*time.Millisecond, 10*time.Second)
	if p := emu.PhysicalSteps(); math.Abs(p-200) > 1e-6 {
		t.Errorf("physical %g full steps, want 200 (800 microsteps at 1/8)", p)
	}
	if p := emu.PhysicalMicrosteps(); math.Abs(p-1600) > 1e-5 {
		t.Errorf("physical %g microsteps, want 1600", p)
	}
}

func TestStallLosesSteps(t *testing.T) {
	clk, emu, dev := setup(t, Options{StartSteps: 100, TravelSteps: 5000})
	must(t, dev.SetMaxSpeed(20_000_000))
	must(t, dev.SetMaxAccel(1_000_000))
	must(t, dev.ExitSafeStart())
	emu.StallSteps(100)
	must(t, dev.SetTargetPosition(1000))
	pollUntilStopped(t, clk, dev, 1000, 5*time.Millisecond, 10*time.Second)
	if p := emu.PhysicalSteps(); math.Abs(p-1000) > 1e-6 {
		t.Errorf("physical %g, want 1000 (100 of 1000 steps lost)", p)
	}
}

func home(t *testing.T, clk *sim.Clock, dev *tic.Dev, forward bool, limit time.Duration) time.Duration {
	t.Helper()
	start := clk.Now()
	if forward {
		must(t, dev.GoHomeForward())
	} else {
		must(t, dev.GoHomeReverse())
	}
	for clk.Now().Sub(start) < limit {
		must(t, dev.ResetCommandTimeout())
		if !get[bool](t)(dev.IsHomingActive()) {
			return clk.Now().Sub(start)
		}
		must(t, clk.Sleep(context.Background(), 5*time.Millisecond))
	}
	return -1
}

func TestHomingFindsSwitchAndZeroes(t *testing.T) {
	clk, emu, dev := setup(t, Options{StartSteps: 600, TravelSteps: 5000,
		HomingSpeedTowards: 2_000_000, HomingSpeedAway: 100_000})
	must(t, dev.SetMaxAccel(10_000_000))
	must(t, dev.SetMaxDecel(10_000_000))
	must(t, dev.ExitSafeStart())
	took := home(t, clk, dev, false, time.Minute)
	if took < 0 {
		t.Fatal("homing did not finish")
	}
	// 600 steps at 200 steps/s, 20 ms pause, back off at 10 steps/s.
	if took < 3*time.Second || took > 3200*time.Millisecond {
		t.Errorf("homing took %s, want about 3.0 s", took)
	}
	if p := get[int32](t)(dev.GetCurrentPosition()); p != 0 {
		t.Errorf("position after homing %d", p)
	}
	if get[bool](t)(dev.IsPositionUncertain()) {
		t.Error("position still uncertain after homing")
	}
	if get[bool](t)(dev.IsReverseLimitActive()) {
		t.Error("reverse limit still active after backing off")
	}
	if p := emu.PhysicalSteps(); math.Abs(p) > 0.01 {
		t.Errorf("home is %g full steps from the switch", p)
	}

	// Limit stop: a target beyond the forward switch stops at the switch.
	must(t, dev.SetMaxSpeed(20_000_000))
	must(t, dev.SetTargetPosition(9000))
	for i := 0; i < 2000 && emu.Moving() || i == 0; i++ {
		must(t, dev.ResetCommandTimeout())
		must(t, clk.Sleep(context.Background(), 5*time.Millisecond))
	}
	if !get[bool](t)(dev.IsForwardLimitActive()) {
		t.Error("forward limit not active")
	}
	if v := get[int32](t)(dev.GetCurrentVelocity()); v != 0 {
		t.Errorf("velocity at limit %d", v)
	}
	if p := get[int32](t)(dev.GetCurrentPosition()); p < 5000 || p > 5050 {
		t.Errorf("stopped at %d, want just past 5000", p)
	}
}

func TestHomingNeverCompletesWithBrokenSwitch(t *testing.T) {
	clk, emu, dev := setup(t, Options{StartSteps: 100, TravelSteps: 5000})
	emu.BreakLimitSwitch(true)
	must(t, dev.ExitSafeStart())
	if took := home(t, clk, dev, false, 20*time.Second); took >= 0 {
		t.Fatalf("homing finished after %s with a broken switch", took)
	}
	if p := emu.PhysicalSteps(); p != -50 {
		t.Errorf("carriage at %g, want at the hard stop -50", p)
	}
}

func TestCommandTimeout(t *testing.T) {
	clk, emu, dev := setup(t, Options{StartSteps: 100})
	must(t, dev.ExitSafeStart())
	ctx := context.Background()
	for range 20 { // 5 s of refreshed time
		must(t, clk.Sleep(ctx, 250*time.Millisecond))
		must(t, dev.ResetCommandTimeout())
		if s := emu.ErrorStatus(); s != 0 {
			t.Fatalf("error status %#x while refreshed", s)
		}
	}
	// Reads and settings do not feed the dead-man.
	for range 4 {
		must(t, clk.Sleep(ctx, 240*time.Millisecond))
		_, err := dev.GetCurrentPosition()
		must(t, err)
		must(t, dev.SetMaxSpeed(1000000))
	}
	if s := emu.ErrorStatus(); s != 0 {
		t.Fatalf("error status %#x before 1 s", s)
	}
	must(t, clk.Sleep(ctx, 50*time.Millisecond))
	s := get[uint16](t)(dev.GetErrorStatus())
	if s&(1<<tic.ErrorBitCommandTimeout) == 0 || s&(1<<tic.ErrorBitSafeStartViolation) == 0 {
		t.Fatalf("error status %#x, want command timeout + safe start", s)
	}
	// Exit safe start clears both.
	must(t, dev.ExitSafeStart())
	if s := get[uint16](t)(dev.GetErrorStatus()); s != 0 {
		t.Fatalf("error status %#x after exit safe start", s)
	}
}

func TestCommandTimeoutStopsMotion(t *testing.T) {
	clk, emu, dev := setup(t, Options{StartSteps: 100, TravelSteps: 100000})
	must(t, dev.SetMaxSpeed(20_000_000))
	must(t, dev.ExitSafeStart())
	must(t, dev.SetTargetPosition(50000))
	clk.Advance(2 * time.Second)
	if emu.Moving() {
		t.Fatal("still moving after the command timeout")
	}
	if p := get[int32](t)(dev.GetCurrentPosition()); p <= 0 || p >= 50000 {
		t.Errorf("position %d", p)
	}
	if !get[bool](t)(dev.IsPositionUncertain()) {
		t.Error("abrupt stop should make the position uncertain")
	}
}

func TestSafeStartRequired(t *testing.T) {
	clk, emu, dev := setup(t, Options{StartSteps: 100, CommandTimeout: -1})
	must(t, dev.SetMaxSpeed(20_000_000))
	must(t, dev.SetTargetPosition(500))
	clk.Advance(time.Second)
	if p := get[int32](t)(dev.GetCurrentPosition()); p != 0 || emu.Moving() {
		t.Fatalf("moved to %d without exit safe start", p)
	}
	must(t, dev.ExitSafeStart())
	clk.Advance(3 * time.Second)
	if p := get[int32](t)(dev.GetCurrentPosition()); p != 500 {
		t.Fatalf("position %d after exit safe start, want 500", p)
	}
}

func TestDriverErrorHaltsAbruptly(t *testing.T) {
	clk, emu, dev := setup(t, Options{StartSteps: 100, TravelSteps: 100000, CommandTimeout: -1})
	must(t, dev.SetMaxSpeed(20_000_000))
	must(t, dev.ExitSafeStart())
	must(t, dev.SetTargetPosition(50000))
	clk.Advance(500 * time.Millisecond)
	emu.InjectDriverError()
	if emu.Moving() {
		t.Fatal("moving after driver error")
	}
	if !get[bool](t)(dev.HasError(tic.ErrorBitMotorDriverError)) {
		t.Fatal("driver error bit not set")
	}
	if get[bool](t)(dev.IsEnergized()) {
		t.Error("energized with a driver error")
	}
	must(t, dev.ClearDriverError())
	must(t, dev.ExitSafeStart())
	if s := get[uint16](t)(dev.GetErrorStatus()); s != 0 {
		t.Errorf("error status %#x after clear + exit safe start", s)
	}
}

func TestLowVin(t *testing.T) {
	_, emu, dev := setup(t, Options{})
	emu.SetVin(1 * physic.Volt)
	if !get[bool](t)(dev.HasError(tic.ErrorBitLowVin)) {
		t.Fatal("low vin not reported")
	}
	emu.SetVin(12 * physic.Volt)
	if get[bool](t)(dev.HasError(tic.ErrorBitLowVin)) {
		t.Fatal("low vin not cleared")
	}
}

func TestNACK(t *testing.T) {
	_, emu, dev := setup(t, Options{})
	emu.InjectNACK(1)
	if _, err := dev.GetMaxSpeed(); !errors.Is(err, ErrNACK) {
		t.Fatalf("err = %v, want NACK", err)
	}
	if _, err := dev.GetMaxSpeed(); err != nil {
		t.Fatalf("after the injected NACK: %v", err)
	}
	bus := NewBus()
	_, err := tic.NewI2C(bus, tic.TicT834, 0x22)
	if !errors.Is(err, ErrNACK) || !errors.Is(err, tic.ErrConnectionFailed) {
		t.Fatalf("empty bus: err = %v", err)
	}
	t.Log(err)
}

func TestMalformedTransfers(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    []byte
		r    int
	}{
		{"unknown command", []byte{0x42}, 0},
		{"quick with data", []byte{0x89, 0x00}, 0},
		{"7-bit without data", []byte{0x94}, 0},
		{"7-bit data MSB", []byte{0x94, 0x80}, 0},
		{"32-bit short", []byte{0xE0, 1, 2}, 0},
		{"32-bit long", []byte{0xE0, 1, 2, 3, 4, 5}, 0},
		{"step mode beyond variant", []byte{0x94, 9}, 0},
		{"read without block read", nil, 4},
		{"read too long", []byte{0xA1, 0x00}, 16},
		{"read past variables", []byte{0xA1, 0x58}, 4},
		{"block read 3 bytes", []byte{0xA1, 0, 0}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := sim.NewClock()
			emu := New(clk, Options{})
			bus := NewBus()
			must(t, bus.Attach(addr, emu))
			var r []byte
			if tc.r > 0 {
				r = make([]byte, tc.r)
			}
			if err := bus.Tx(addr, tc.w, r); err == nil {
				t.Fatal("no error")
			} else {
				t.Log(err)
			}
		})
	}
}

func TestRepeatedStartAndSMBusRead(t *testing.T) {
	clk := sim.NewClock()
	emu := New(clk, Options{})
	bus := NewBus()
	must(t, bus.Attach(addr, emu))
	r := make([]byte, 1)
	must(t, bus.Tx(addr, []byte{0xA1, byte(tic.OffsetStepMode)}, r))
	must(t, bus.Tx(addr, []byte{0xA1}, nil))
	must(t, bus.Tx(addr, nil, r))
	if r[0] != 0 {
		t.Fatal(r)
	}
}
