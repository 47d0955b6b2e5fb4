// Package ticemu emulates Pololu Tic stepper motor controllers at the wire:
// an i2c.Bus (Bus) with emulated Tics (Tic) attached by address, each
// driving a simulated motor, lead screw and pair of limit switches. The real
// periph.io/x/devices/v3/tic driver, and hal/ticaxis on top of it, run on it
// unchanged; on the robot the same code runs over /dev/i2c-1. Any other
// emulated I²C target implementing Device (hal/sim/dacemu,
// hal/sim/pca9685emu) attaches to the same Bus. Options.BacklashSteps adds
// play between the motor and the carriage.
//
// References are to the Tic Stepper Motor Controller User's Guide
// (https://www.pololu.com/docs/0J71).
//
// # Emulated
//
//   - I²C encoding (section 10): quick, 7-bit write, 32-bit write and block
//     read ([0xA1|0xA2|0xA8, offset] then a read of 1..15 bytes, in the same
//     transfer after a repeated start or in the next one; also the SMBus form
//     where the command byte alone repeats the previous offset).
//   - Commands (section 8): set target position/velocity, halt and set
//     position, halt and hold, go home, reset command timeout, (de-)energize,
//     exit/enter safe start, reset, clear driver error, set max speed,
//     starting speed, max accel/decel, step mode (checked per variant),
//     current limit (code stored as sent), decay mode, AGC option.
//   - Variables (section 7, offsets 0x00..0x59 and 0xFF): operation state,
//     misc flags 1, error status, errors occurred (latched, cleared by
//     0xA2), planning mode, targets, motion parameters, current position and
//     velocity, acting target, time since last step, VIN, uptime, step mode,
//     current limit, decay mode, input state, input after scaling, AGC.
//   - Settings (section 6) for "Get setting": control mode (0x01), command
//     timeout (0x09), starting speed (0x43), max speed (0x47); other bytes 0.
//   - Errors (section 5.4): safe start violation at power-up and whenever
//     another error is present (Serial/I²C/USB mode), cleared by "Exit safe
//     start" for 200 ms; command timeout, fed only by the commands the guide
//     lists (set target position/velocity, halt and set position, halt and
//     hold, energize, exit safe start, reset, reset command timeout); serial
//     error + "serial format" for malformed commands; motor driver error;
//     low VIN; kill switch; intentionally de-energized. Leaving the normal
//     state stops the motor abruptly (modelled soft error response: halt),
//     abandons homing and, if the motor was moving, sets position uncertain.
//   - Motion (section 5.1): the profile is integrated in 1 ms steps from the
//     injected hal.Clock (lazily, whenever the device is touched): trapezoid
//     with max speed, acceleration, deceleration (0 = acceleration) and
//     starting speed, landing exactly on the target; velocity mode;
//     32-bit position wrap-around.
//   - Limit switches at the physical ends of travel stop motion towards them
//     at once and show in misc flags; beyond them is a hard stop where the
//     motor stalls (counted steps continue, the carriage does not).
//   - Homing (section 5.6): towards the switch at "homing speed towards",
//     20 ms pause, away at "homing speed away" until the switch releases,
//     then position 0 and position certain. Motion commands are ignored while
//     homing; halts abort it.
//   - Bus time: a bus made with NewTimedBus takes each transfer's time on
//     the wire (WireTime: 9 bit times per byte with the address, START,
//     repeated START and STOP, at the speed set with SetSpeed, 100 kHz by
//     default) on its clock before the device sees it, so a command takes
//     effect and a read samples the device at the transfer's STOP. The
//     simulated robot (hal/sim/world) runs its Tics, PCA9685 and DAC on a
//     timed bus. Host latency between transfers is not modelled.
//
// # Truth API and units
//
// Physical lengths are in full steps of the motor, independent of the step
// mode: PhysicalSteps is the carriage's true position in full steps measured
// from the reverse limit switch's trip point (positive towards the forward
// switch); PhysicalMicrosteps is the same in microsteps of the current step
// mode. "Set step mode" therefore changes how far one microstep moves the
// carriage. Moving reports whether steps are being generated.
//
// # Fault injection
//
// InjectNACK, InjectDriverError, BreakLimitSwitch, StallSteps (lost steps:
// counted and true position diverge), SetVin, SetKillSwitch, Bus.Detach.
//
// # Not emulated
//
// TTL serial and USB, CRC, the STEP/DIR, RC, analog and encoder control
// modes and their inputs (readings report "null"), encoder position, the
// "starting up" and "waiting for ERR line" states, soft error responses other
// than halt, "automatically clear driver errors", the 10 ms I²C blackout
// after Reset, current-limit clamping per variant, motor torque (no stalls
// from load or speed), "Set setting" and most EEPROM settings. Low-VIN
// thresholds for the T500, T249 and 36v4 are estimates.
package ticemu
