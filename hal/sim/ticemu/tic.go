package ticemu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/tic"

	"papscan/hal"
	"papscan/hal/ticaxis/ticspec"
)

// Command bytes (user's guide section 8, I²C encoding section 10).
const (
	CmdSetTargetPosition         byte = 0xE0
	CmdSetTargetVelocity         byte = 0xE3
	CmdHaltAndSetPosition        byte = 0xEC
	CmdHaltAndHold               byte = 0x89
	CmdGoHome                    byte = 0x97
	CmdResetCommandTimeout       byte = 0x8C
	CmdDeenergize                byte = 0x86
	CmdEnergize                  byte = 0x85
	CmdExitSafeStart             byte = 0x83
	CmdEnterSafeStart            byte = 0x8F
	CmdReset                     byte = 0xB0
	CmdClearDriverError          byte = 0x8A
	CmdSetSpeedMax               byte = 0xE6
	CmdSetStartingSpeed          byte = 0xE5
	CmdSetAccelMax               byte = 0xEA
	CmdSetDecelMax               byte = 0xE9
	CmdSetStepMode               byte = 0x94
	CmdSetCurrentLimit           byte = 0x91
	CmdSetDecayMode              byte = 0x92
	CmdSetAGCOption              byte = 0x98
	CmdGetVariable               byte = 0xA1
	CmdGetVariableAndClearErrors byte = 0xA2
	CmdGetSetting                byte = 0xA8
)

// Error bits (user's guide section 5.4, variable "Error status" and "Errors
// occurred").
const (
	ErrIntentionallyDeenergized uint32 = 1 << tic.ErrorBitIntentionallyDeenergized
	ErrMotorDriver              uint32 = 1 << tic.ErrorBitMotorDriverError
	ErrLowVin                   uint32 = 1 << tic.ErrorBitLowVin
	ErrKillSwitch               uint32 = 1 << tic.ErrorBitKillSwitch
	ErrRequiredInputInvalid     uint32 = 1 << tic.ErrorBitRequiredInputInvalid
	ErrSerial                   uint32 = 1 << tic.ErrorBitSerialError
	ErrCommandTimeout           uint32 = 1 << tic.ErrorBitCommandTimeout
	ErrSafeStartViolation       uint32 = 1 << tic.ErrorBitSafeStartViolation
	ErrErrLineHigh              uint32 = 1 << tic.ErrorBitErrLineHigh
	ErrSerialFormat             uint32 = 1 << tic.ErrorBitFormat // errors occurred only
)

// Misc flags 1 bits (variable offset 0x01).
const (
	FlagEnergized          uint8 = 1 << 0
	FlagPositionUncertain  uint8 = 1 << 1
	FlagForwardLimitActive uint8 = 1 << 2
	FlagReverseLimitActive uint8 = 1 << 3
	FlagHomingActive       uint8 = 1 << 4
)

// Settings offsets emulated for the "Get setting" command (section 6).
const (
	SettingControlMode    = 0x01 // u8, 0 = Serial / I²C / USB
	SettingCommandTimeout = 0x09 // u16, ms, 0 = disabled
	SettingStartingSpeed  = 0x43 // u32
	SettingMaxSpeed       = 0x47 // u32
)

const (
	varBlockSize    = 0x5A // variables 0x00..0x59
	maxBlockRead    = 15   // section 10: "up to 15 bytes"
	exitSafeWindow  = 200 * time.Millisecond
	homingPauseTime = 20 * time.Millisecond // section 5.6 step 4
	tick            = time.Millisecond      // motion integration step
	switchEps       = 1e-6                  // full steps
	maxSpeedLimit   = ticspec.MaxSpeedUnits // µsteps/10000 s
	minAccel        = ticspec.MinAccelUnits // µsteps/100 s²
)

// Options configures an emulated Tic and the mechanics behind it.
//
// Physical lengths are in full steps of the motor (TravelSteps, StartSteps,
// OvertravelSteps): a full step is a fixed angle of the shaft, whatever the
// step mode, so the mechanics do not change when "Set step mode" changes how
// many microsteps make a full step.
type Options struct {
	// Variant of the controller; default tic.TicT834.
	Variant tic.Variant
	// TravelSteps is the distance between the reverse and forward limit
	// switches' trip points, in full steps. Default 10000.
	TravelSteps float64
	// StartSteps is the carriage's true position at power-up, in full steps
	// from the reverse switch's trip point (unknown to the controller).
	StartSteps float64
	// OvertravelSteps is how far past each switch the carriage can go before
	// it hits the hard mechanical stop (where the motor stalls), in full
	// steps. Default 50.
	OvertravelSteps float64
	// HomingSpeedTowards and HomingSpeedAway are the Tic's "Homing speed
	// towards" and "Homing speed away" settings, in microsteps per 10000 s.
	// Defaults 1,000,000 and 100,000.
	HomingSpeedTowards, HomingSpeedAway uint32
	// CommandTimeout is the Tic's "Command timeout" setting. 0 means the
	// default, 1 s; a negative value disables the feature (setting value 0).
	// It is stored with millisecond resolution, like the setting.
	CommandTimeout time.Duration
	// NoReverseSwitch and NoForwardSwitch leave a limit switch unfitted.
	NoReverseSwitch, NoForwardSwitch bool
	// Vin is the supply voltage; default 24 V.
	Vin physic.ElectricPotential
	// BacklashSteps is the lost motion of the lead screw and nut, in full
	// steps: after a reversal the motor turns this far before the carriage
	// follows. The carriage stays between motor-BacklashSteps and the
	// motor's position. Default 0 (none).
	BacklashSteps float64
}

// Tic is one emulated Tic stepper motor controller plus its motor, lead
// screw and limit switches. Attach it to a Bus. All methods are safe for
// concurrent use. Time comes from the injected clock: the state is advanced
// lazily to clock.Now() whenever it is touched.
type Tic struct {
	mu    sync.Mutex
	clock hal.Clock
	opts  Options
	born  time.Time
	now   time.Time // simulated up to here

	// Controller state (variable reference, section 7).
	errStatus      uint32 // low 16 bits are the error status
	errOccurred    uint32
	uncertain      bool
	planning       tic.PlanningMode
	targetPos      int32
	targetVel      int32
	inputState     tic.InputState
	startSpeed     uint32
	maxSpeed       uint32
	maxAccel       uint32
	maxDecel       uint32
	stepMode       tic.StepMode
	currentLimit   uint8
	decayMode      uint8
	agc            [4]uint8
	lastCmd        time.Time
	exitSafeUntil  time.Time
	driverFault    bool // injected motor driver fault still present
	killSwitch     bool
	vinMV          uint32
	lastStepAt     time.Time
	homing         homingPhase
	homeForward    bool
	homingPauseEnd time.Time

	// Motion state. x is the counted position in microsteps (continuous; the
	// reported variable is x rounded), v the velocity in microsteps/s.
	x, v float64
	// Mechanics.
	phys       float64 // true position, full steps from the reverse switch
	motor      float64 // the motor shaft's position, full steps (phys plus backlash)
	stallLeft  float64 // microsteps still to be lost
	revBroken  bool
	fwdBroken  bool
	settings   [256]byte
	pending    *blockRead
	lastRead   *blockRead
	nackLeft   int
	nackCmd    map[byte]int
	cmdCounts  map[byte]int
	resetCount int
}

type homingPhase int

const (
	homingNone homingPhase = iota
	homingTowards
	homingPaused
	homingAway
)

type blockRead struct {
	cmd    byte
	offset byte
}

// New returns an emulated Tic in its power-up state: position 0, position
// uncertain, energized, "Safe start violation" set (Serial / I²C / USB mode
// needs "Exit safe start" before the motor moves).
func New(clock hal.Clock, opts Options) *Tic {
	if opts.Variant == "" {
		opts.Variant = tic.TicT834
	}
	if opts.TravelSteps <= 0 {
		opts.TravelSteps = 10000
	}
	if opts.OvertravelSteps <= 0 {
		opts.OvertravelSteps = 50
	}
	if opts.HomingSpeedTowards == 0 {
		opts.HomingSpeedTowards = 1_000_000
	}
	if opts.HomingSpeedAway == 0 {
		opts.HomingSpeedAway = 100_000
	}
	switch {
	case opts.CommandTimeout == 0:
		opts.CommandTimeout = time.Second
	case opts.CommandTimeout < 0:
		opts.CommandTimeout = 0
	case opts.CommandTimeout > 60*time.Second:
		opts.CommandTimeout = 60 * time.Second // setting range 0..60000 ms
	}
	opts.CommandTimeout = opts.CommandTimeout.Truncate(time.Millisecond)
	if opts.Vin == 0 {
		opts.Vin = 24 * physic.Volt
	}
	now := clock.Now()
	t := &Tic{
		clock:     clock,
		opts:      opts,
		born:      now,
		now:       now,
		phys:      opts.StartSteps,
		motor:     opts.StartSteps,
		nackCmd:   map[byte]int{},
		vinMV:     uint32(opts.Vin / physic.MilliVolt),
		cmdCounts: map[byte]int{},
	}
	t.settings[SettingControlMode] = 0
	binary.LittleEndian.PutUint16(t.settings[SettingCommandTimeout:], uint16(opts.CommandTimeout/time.Millisecond))
	binary.LittleEndian.PutUint32(t.settings[SettingStartingSpeed:], 0)
	binary.LittleEndian.PutUint32(t.settings[SettingMaxSpeed:], 2_000_000)
	t.powerUp()
	return t
}

// powerUp sets the state a reset leaves (the mechanics and uptime stay).
func (t *Tic) powerUp() {
	t.errStatus = ErrSafeStartViolation
	t.errOccurred |= ErrSafeStartViolation
	t.uncertain = true
	t.planning = tic.PlanningModeOff
	t.targetPos, t.targetVel = 0, 0
	t.inputState = tic.InputStateNotReady
	t.startSpeed = binary.LittleEndian.Uint32(t.settings[SettingStartingSpeed:])
	t.maxSpeed = binary.LittleEndian.Uint32(t.settings[SettingMaxSpeed:])
	t.maxAccel, t.maxDecel = 40_000, 40_000
	t.stepMode = tic.StepModeFull
	t.currentLimit = 0
	t.decayMode = 0
	t.agc = [4]uint8{}
	t.lastCmd = t.now
	t.exitSafeUntil = time.Time{}
	t.homing = homingNone
	t.x, t.v = 0, 0
	t.pending, t.lastRead = nil, nil
	t.updateConditions()
}

// --- fault injection and truth API -------------------------------------

// InjectNACK makes the next n transfers addressed to this Tic fail with an
// error wrapping ErrNACK, without any effect on the device.
func (t *Tic) InjectNACK(n int) {
	t.mu.Lock()
	t.nackLeft = n
	t.mu.Unlock()
}

// InjectNACKOnCommand makes the next n writes whose first byte is cmd
// fail with an error wrapping ErrNACK, without any effect on the device
// (the command is lost on the wire). Other transfers pass.
func (t *Tic) InjectNACKOnCommand(cmd byte, n int) {
	t.mu.Lock()
	t.nackCmd[cmd] = n
	t.mu.Unlock()
}

// I2CTx implements Device.
func (t *Tic) I2CTx(w, r []byte) error { return t.tx(w, r) }

// InjectDriverError raises the "Motor driver error" (as an over-current or
// over-temperature fault of the driver chip would). The motor stops at once.
// The error stays until a "Clear driver error" command.
func (t *Tic) InjectDriverError() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	t.driverFault = true
	t.raise(ErrMotorDriver)
}

// BreakLimitSwitch makes the reverse (or forward) limit switch never report
// active again (a cut wire): homing towards it never completes and the
// carriage runs into the hard stop, where the motor stalls.
func (t *Tic) BreakLimitSwitch(reverse bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	if reverse {
		t.revBroken = true
	} else {
		t.fwdBroken = true
	}
}

// StallSteps makes the next n commanded microsteps (in the step mode in force
// when they are taken) produce no motion: the counted position and the
// physical position diverge by n microsteps, as with a motor that skips steps.
func (t *Tic) StallSteps(n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	if n > 0 {
		t.stallLeft += float64(n)
	}
}

// SetVin sets the supply voltage. Below the variant's "Low VIN" threshold the
// Tic raises the "Low VIN" error, which clears when the voltage recovers.
func (t *Tic) SetVin(v physic.ElectricPotential) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	if v < 0 {
		v = 0
	}
	t.vinMV = uint32(v / physic.MilliVolt)
	t.updateConditions()
}

// SetKillSwitch sets or releases a kill switch input ("Kill switch active").
func (t *Tic) SetKillSwitch(active bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	t.killSwitch = active
	t.updateConditions()
}

// PhysicalSteps is the carriage's true position in full steps, measured from
// the reverse limit switch's trip point (positive towards the forward
// switch). It ignores the step mode and lost steps: it is what a camera
// looking at the stage would see.
func (t *Tic) PhysicalSteps() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	return t.phys
}

// PhysicalMicrosteps is PhysicalSteps in microsteps of the current step mode.
func (t *Tic) PhysicalMicrosteps() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	return t.phys * float64(microstepsPerStep(t.stepMode))
}

// Moving reports whether the motor is being stepped.
func (t *Tic) Moving() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	return t.v != 0
}

// CommandCount is how many valid commands with command byte cmd the Tic has
// received (for tests: "was Halt and hold sent?").
func (t *Tic) CommandCount(cmd byte) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cmdCounts[cmd]
}

// ErrorStatus is the current "Error status" variable (for tests).
func (t *Tic) ErrorStatus() uint16 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	return uint16(t.errStatus)
}

// --- conditions and errors ------------------------------------------------

// lowVinThresholdMV is the "Low VIN" threshold. T825 (7.0 V) and T834
// (2.1 V) are from the user's guide section 5.4; the others are estimates.
func (t *Tic) lowVinThresholdMV() uint32 {
	switch t.opts.Variant {
	case tic.TicT825:
		return 7000
	case tic.TicT834:
		return 2100
	case tic.TicT500:
		return 4000
	case tic.TicT249:
		return 8000
	default: // 36v4
		return 7000
	}
}

// updateConditions re-evaluates condition-driven error bits and safe start.
func (t *Tic) updateConditions() {
	set, clr := uint32(0), uint32(0)
	if t.vinMV < t.lowVinThresholdMV() {
		set |= ErrLowVin
	} else {
		clr |= ErrLowVin
	}
	if t.killSwitch {
		set |= ErrKillSwitch
	} else {
		clr |= ErrKillSwitch
	}
	t.errStatus &^= clr
	if set != 0 {
		t.raise(set)
	}
	// Section 5.4: in Serial / I²C / USB mode the safe start bit is set
	// whenever the Tic is not operating normally; "Exit safe start" clears it
	// for 200 ms, so it clears if no other error remains in that window.
	if t.errStatus&^ErrSafeStartViolation != 0 {
		t.errStatus |= ErrSafeStartViolation
	} else if t.errStatus == ErrSafeStartViolation && t.now.Before(t.exitSafeUntil) {
		t.errStatus = 0
	}
}

// raise sets error bits. Leaving the normal state stops the motor abruptly
// (the emulated "soft error response" is halt): planning stops, homing is
// abandoned, and if the motor was moving the position becomes uncertain.
func (t *Tic) raise(bits uint32) {
	if bits == 0 {
		return
	}
	wasNormal := t.errStatus == 0
	t.errStatus |= bits
	t.errOccurred |= bits
	if t.errStatus&^ErrSafeStartViolation != 0 {
		t.errStatus |= ErrSafeStartViolation
		t.errOccurred |= ErrSafeStartViolation
	}
	if wasNormal || t.v != 0 || t.homing != homingNone {
		t.abruptStop()
	}
}

func (t *Tic) abruptStop() {
	if t.v != 0 || t.homing != homingNone {
		t.uncertain = true
	}
	t.v = 0
	t.planning = tic.PlanningModeOff
	t.homing = homingNone
}

func (t *Tic) operationState() tic.OperationState {
	switch {
	case t.errStatus&(ErrIntentionallyDeenergized|ErrMotorDriver|ErrLowVin) != 0:
		return tic.OperationStateDeenergized
	case t.errStatus != 0:
		return tic.OperationStateSoftError
	default:
		return tic.OperationStateNormal
	}
}

func (t *Tic) miscFlags() uint8 {
	var f uint8
	if t.operationState() != tic.OperationStateDeenergized {
		f |= FlagEnergized
	}
	if t.uncertain {
		f |= FlagPositionUncertain
	}
	if t.fwdActive() {
		f |= FlagForwardLimitActive
	}
	if t.revActive() {
		f |= FlagReverseLimitActive
	}
	if t.homing != homingNone {
		f |= FlagHomingActive
	}
	return f
}

func (t *Tic) revActive() bool {
	return !t.opts.NoReverseSwitch && !t.revBroken && t.phys < -switchEps
}

func (t *Tic) fwdActive() bool {
	return !t.opts.NoForwardSwitch && !t.fwdBroken && t.phys > t.opts.TravelSteps+switchEps
}

// microstepsPerStep is ticspec's, with a full step for a code no Tic
// has (refused by "Set step mode" anyway).
func microstepsPerStep(m tic.StepMode) int {
	if n := ticspec.Microsteps(uint8(m)); n > 0 {
		return n
	}
	return 1
}

// stepModeValid: the step-mode codes the variant takes (ticspec; the
// default variant is the T834's).
func (t *Tic) stepModeValid(m uint8) bool {
	v, ok := ticspec.ByModel(string(t.opts.Variant))
	return ok && v.TakesCode(m)
}

// --- the wire ---------------------------------------------------------------

var (
	errUnknownCommand = errors.New("unknown command byte")
	errLength         = errors.New("wrong transfer length for command")
	errDataByte       = errors.New("invalid data byte")
	errNoBlockRead    = errors.New("read without a preceding block read command")
	errReadLength     = errors.New("block read length out of range")
)

// tx handles one I²C transfer: an optional write followed (after a repeated
// start) by an optional read. Section 10 of the user's guide: the block read
// command is a write of [command, offset] and then a read of up to 15 bytes.
func (t *Tic) tx(w, r []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nackLeft > 0 {
		t.nackLeft--
		return fmt.Errorf("injected fault: %w", ErrNACK)
	}
	if len(w) > 0 && t.nackCmd[w[0]] > 0 {
		t.nackCmd[w[0]]--
		return fmt.Errorf("injected fault on command 0x%02X: %w", w[0], ErrNACK)
	}
	t.advance()
	if len(w) > 0 {
		if err := t.write(w); err != nil {
			return err
		}
	}
	if len(r) > 0 {
		return t.read(r)
	}
	return nil
}

// malformed records a bad command the way the Tic does (section 5.4,
// "Serial error": the error bit plus "Serial format" in errors occurred).
func (t *Tic) malformed(err error, w []byte) error {
	t.raise(ErrSerial)
	t.errOccurred |= ErrSerialFormat
	if len(w) > 8 {
		w = w[:8]
	}
	return fmt.Errorf("%w (% X)", err, w)
}

func (t *Tic) write(w []byte) error {
	cmd := w[0]
	t.pending = nil
	want := 0
	switch cmd {
	case CmdHaltAndHold, CmdResetCommandTimeout, CmdDeenergize, CmdEnergize,
		CmdExitSafeStart, CmdEnterSafeStart, CmdReset, CmdClearDriverError:
		want = 1
	case CmdGoHome, CmdSetStepMode, CmdSetCurrentLimit, CmdSetDecayMode, CmdSetAGCOption:
		want = 2
	case CmdSetTargetPosition, CmdSetTargetVelocity, CmdHaltAndSetPosition,
		CmdSetSpeedMax, CmdSetStartingSpeed, CmdSetAccelMax, CmdSetDecelMax:
		want = 5
	case CmdGetVariable, CmdGetVariableAndClearErrors, CmdGetSetting:
		switch {
		case len(w) == 2:
			t.pending = &blockRead{cmd: cmd, offset: w[1]}
			t.lastRead = t.pending
			return nil
		case len(w) == 1 && t.lastRead != nil && t.lastRead.cmd == cmd:
			// SMBus-compatible form: the command alone repeats the
			// previous offset (section 10, block read).
			t.pending = t.lastRead
			return nil
		}
		return t.malformed(errLength, w)
	default:
		return t.malformed(errUnknownCommand, w)
	}
	if len(w) != want {
		return t.malformed(errLength, w)
	}
	if want == 2 && w[1]&0x80 != 0 {
		return t.malformed(errDataByte, w)
	}
	var v32 uint32
	if want == 5 {
		v32 = binary.LittleEndian.Uint32(w[1:])
	}
	if err := t.execute(cmd, w, v32); err != nil {
		return t.malformed(err, w)
	}
	t.cmdCounts[cmd]++
	return nil
}

// resetsTimeout lists the commands after which the Tic restarts its command
// timeout and clears the serial and command timeout errors (user's guide
// section 5.4, "Serial error" and "Command timeout"): set target
// position/velocity, halt and set position, halt and hold, energize, exit
// safe start, reset, and reset command timeout. Other commands (settings,
// go home, de-energize, reads) do not feed the dead-man.
func resetsTimeout(cmd byte) bool {
	switch cmd {
	case CmdSetTargetPosition, CmdSetTargetVelocity, CmdHaltAndSetPosition,
		CmdHaltAndHold, CmdEnergize, CmdExitSafeStart, CmdReset, CmdResetCommandTimeout:
		return true
	}
	return false
}

func (t *Tic) execute(cmd byte, w []byte, v32 uint32) error {
	// Validate data before any side effect.
	switch cmd {
	case CmdGoHome:
		if w[1] > 1 {
			return errDataByte
		}
	case CmdSetStepMode:
		if !t.stepModeValid(w[1]) {
			return errDataByte
		}
	case CmdSetDecayMode:
		if w[1] > 4 {
			return errDataByte
		}
	case CmdSetTargetVelocity:
		if v := int32(v32); v > maxSpeedLimit || v < -maxSpeedLimit {
			return errDataByte
		}
	case CmdSetSpeedMax, CmdSetStartingSpeed:
		if v32 > maxSpeedLimit {
			return errDataByte
		}
	case CmdSetAccelMax, CmdSetDecelMax:
		if v32 > math.MaxInt32 {
			return errDataByte
		}
	}
	if resetsTimeout(cmd) {
		t.lastCmd = t.now
		t.errStatus &^= ErrSerial | ErrCommandTimeout
	}
	switch cmd {
	case CmdSetTargetPosition:
		if t.homing == homingNone { // homing disregards motion commands (5.6)
			t.planning = tic.PlanningModeTargetPosition
			t.targetPos = int32(v32)
			t.inputState = tic.InputStatePosition
		}
	case CmdSetTargetVelocity:
		if t.homing == homingNone {
			t.planning = tic.PlanningModeTargetVelocity
			t.targetVel = int32(v32)
			t.inputState = tic.InputStateVelocity
		}
	case CmdHaltAndSetPosition:
		t.v = 0
		t.homing = homingNone
		t.planning = tic.PlanningModeOff
		t.x = float64(int32(v32))
		t.uncertain = false
		t.inputState = tic.InputStateHalt
	case CmdHaltAndHold:
		t.v = 0
		t.homing = homingNone
		t.planning = tic.PlanningModeOff
		t.uncertain = true
		t.inputState = tic.InputStateHalt
	case CmdGoHome:
		if t.errStatus == 0 {
			t.homing = homingTowards
			t.homeForward = w[1] == 1
			t.uncertain = true
			t.planning = tic.PlanningModeTargetVelocity
		}
	case CmdResetCommandTimeout:
	case CmdDeenergize:
		t.uncertain = true
		t.raise(ErrIntentionallyDeenergized)
	case CmdEnergize:
		t.errStatus &^= ErrIntentionallyDeenergized
	case CmdExitSafeStart:
		t.exitSafeUntil = t.now.Add(exitSafeWindow)
	case CmdEnterSafeStart:
		t.raise(ErrSafeStartViolation)
		t.exitSafeUntil = time.Time{}
	case CmdReset:
		t.resetCount++
		t.powerUp()
	case CmdClearDriverError:
		t.driverFault = false
		t.errStatus &^= ErrMotorDriver
	case CmdSetSpeedMax:
		t.maxSpeed = v32
	case CmdSetStartingSpeed:
		t.startSpeed = v32
	case CmdSetAccelMax:
		t.maxAccel = max(v32, minAccel)
	case CmdSetDecelMax:
		t.maxDecel = v32 // 0 means "same as max acceleration"
		if t.maxDecel != 0 && t.maxDecel < minAccel {
			t.maxDecel = minAccel
		}
	case CmdSetStepMode:
		t.stepMode = tic.StepMode(w[1])
	case CmdSetCurrentLimit:
		t.currentLimit = w[1]
	case CmdSetDecayMode:
		t.decayMode = w[1]
	case CmdSetAGCOption:
		t.agc[(w[1]>>4)&3] = w[1] & 0x0F
	}
	t.updateConditions()
	return nil
}

func (t *Tic) read(r []byte) error {
	p := t.pending
	t.pending = nil
	if p == nil {
		return errNoBlockRead
	}
	if len(r) > maxBlockRead {
		return fmt.Errorf("%w: %d bytes (max %d)", errReadLength, len(r), maxBlockRead)
	}
	off, n := int(p.offset), len(r)
	switch p.cmd {
	case CmdGetSetting:
		if off+n > len(t.settings) {
			return fmt.Errorf("%w: setting 0x%02X+%d", errReadLength, off, n)
		}
		copy(r, t.settings[off:off+n])
		return nil
	}
	if off == int(tic.OffsetLastHPDriverErrors) && n == 1 {
		r[0] = 0 // "Last HP driver errors" (36v4)
	} else {
		if off+n > varBlockSize {
			return fmt.Errorf("%w: variable 0x%02X+%d", errReadLength, off, n)
		}
		vars := t.variables()
		copy(r, vars[off:off+n])
	}
	if p.cmd == CmdGetVariableAndClearErrors {
		t.errOccurred = 0
	}
	return nil
}

// variables renders the variable block (user's guide section 7).
func (t *Tic) variables() [varBlockSize]byte {
	var b [varBlockSize]byte
	le := binary.LittleEndian
	b[tic.OffsetOperationState] = byte(t.operationState())
	b[tic.OffsetMiscFlags1] = t.miscFlags()
	le.PutUint16(b[tic.OffsetErrorStatus:], uint16(t.errStatus))
	le.PutUint32(b[tic.OffsetErrorsOccurred:], t.errOccurred)
	b[tic.OffsetPlanningMode] = byte(t.planning)
	le.PutUint32(b[tic.OffsetTargetPosition:], uint32(t.targetPos))
	le.PutUint32(b[tic.OffsetTargetVelocity:], uint32(t.targetVel))
	le.PutUint32(b[tic.OffsetStartingSpeed:], t.startSpeed)
	le.PutUint32(b[tic.OffsetSpeedMax:], t.maxSpeed)
	le.PutUint32(b[tic.OffsetDecelMax:], t.maxDecel)
	le.PutUint32(b[tic.OffsetAccelMax:], t.maxAccel)
	pos := t.position()
	le.PutUint32(b[tic.OffsetCurrentPosition:], uint32(pos))
	le.PutUint32(b[tic.OffsetCurrentVelocity:], uint32(int32(math.Round(t.v*ticspec.SpeedScale))))
	acting := pos
	if t.planning == tic.PlanningModeTargetPosition {
		acting = t.targetPos
	}
	le.PutUint32(b[tic.OffsetActingTargetPosition:], uint32(acting))
	var sinceStep uint32
	if t.v != 0 {
		sinceStep = uint32(math.Min(3e6/math.Abs(t.v), math.MaxUint32))
	}
	le.PutUint32(b[tic.OffsetTimeSinceLastStep:], sinceStep)
	b[tic.OffsetDeviceReset] = tic.ResetCausePowerUp
	le.PutUint16(b[tic.OffsetVoltageIn:], uint16(min(t.vinMV, math.MaxUint16)))
	le.PutUint32(b[tic.OffsetUpTime:], uint32(t.now.Sub(t.born)/time.Millisecond))
	le.PutUint32(b[tic.OffsetEncoderPosition:], 0)
	le.PutUint16(b[tic.OffsetRCPulseWidth:], tic.InputNull)
	for _, o := range []int{int(tic.OffsetAnalogReadingSCL), int(tic.OffsetAnalogReadingSDA),
		int(tic.OffsetAnalogReadingTX), int(tic.OffsetAnalogReadingRX)} {
		le.PutUint16(b[o:], tic.InputNull)
	}
	b[tic.OffsetDigitalReadings] = 0b11 // SCL, SDA idle high
	b[tic.OffsetPinStates] = 0
	b[tic.OffsetStepMode] = byte(t.stepMode)
	b[tic.OffsetCurrentLimit] = t.currentLimit
	b[tic.OffsetDecayMode] = t.decayMode
	b[tic.OffsetInputState] = byte(t.inputState)
	le.PutUint16(b[tic.OffsetInputAfterAveraging:], tic.InputNull)
	le.PutUint16(b[tic.OffsetInputAfterHysteresis:], tic.InputNull)
	var scaled int32
	switch t.inputState {
	case tic.InputStatePosition:
		scaled = t.targetPos
	case tic.InputStateVelocity:
		scaled = t.targetVel
	}
	le.PutUint32(b[tic.OffsetInputAfterScaling:], uint32(scaled))
	b[tic.OffsetLastMotorDriverError] = 0
	for i := range t.agc {
		b[int(tic.OffsetAGCMode)+i] = t.agc[i]
	}
	return b
}

// position is the "Current position" variable: the counted microsteps,
// wrapping like the Tic's int32.
func (t *Tic) position() int32 {
	return int32(int64(math.Round(t.x)))
}
