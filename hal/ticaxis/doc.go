// Package ticaxis implements hal.Axis on a Pololu Tic stepper motor
// controller over I²C, through periph's tic driver. On the robot it runs over
// /dev/i2c-1; in simulation over hal/sim/ticemu, byte for byte the same.
//
// References are to the Tic Stepper Motor Controller User's Guide
// (https://www.pololu.com/docs/0J71).
//
// Units: the axis converts µm to microsteps with Options.MicrostepsPerUM
// (rounded, in int64, range-checked into the Tic's int32); speeds go to the
// Tic in microsteps per 10000 s and accelerations (Options.Acceleration and
// Deceleration, in µm/s²) in microsteps per 100 s² (section 5.1). The
// models, their step modes and current limits and these ranges are
// ticspec's, which firmware-config's validator reads too; Options.Check
// says whether New would accept the options without touching the bus.
//
// Safety rules:
//
//   - New halts the Tic, programs step mode, current limit, max speed,
//     acceleration and deceleration, checks the Tic's "Command timeout"
//     setting against Options.CommandTimeout, energizes, exits safe start and
//     requires a clean error status (section 5.4).
//   - Moves are refused before homing (hal.ErrNotHomed), outside
//     [TravelMin, TravelMax] (hal.ErrOutOfTravel) and while a fault is
//     latched (hal.ErrFault).
//   - Home uses the Tic's homing procedure (section 5.6) and fails loudly,
//     wrapping hal.ErrTimeout, if the switch never triggers.
//   - Wait polls error status, misc flags, position and velocity. Any Tic
//     error, a limit switch, "position uncertain", de-energizing or a move
//     far slower than its trapezoid predicts halts the motor (Halt and hold)
//     and latches a fault; moves stay refused until ClearFault and Home.
//   - The Tic's command timeout is the dead-man: while a move or homing is in
//     progress the driver sends "Reset command timeout" at least every half
//     period, for every axis of its Group holding a move (so a Stage's Y
//     keeps moving while X is waited for). An idle axis is allowed to time
//     out at rest; the next Start recovers with "Exit safe start" if nothing
//     else is wrong.
//   - Every latched fault is a *hal.Fault naming the axis, with its code:
//     hal.FaultBus for an I²C NACK or error, hal.FaultDriver for a Tic
//     error bit, "position uncertain" or de-energized, hal.FaultLimit for a
//     limit switch outside homing or a homing switch that never triggers,
//     hal.FaultMotion for a move over its time budget or a command timeout
//     that fired during a move (the control loop stalled).
//   - Backlash compensation (Options.Backlash): every target is approached
//     from one side (forward unless Options.ApproachReverse); a move that
//     would arrive from the other side first overshoots by the backlash.
//   - Halt is an emergency stop: it may lose steps, so the axis must be
//     homed again. Reads are retried once; commands are never retried.
package ticaxis
