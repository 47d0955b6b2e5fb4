// Package stepemu emulates a STEP/DIR/ENABLE stepper driver chip (A4988,
// DRV8825, TMC2209 in step/dir mode) with its motor, a lead screw and a
// limit switch, at the GPIO wire: it hands out gpio pins (periph gpiotest
// pins with behaviour) that the real hal/stepdir driver toggles. Every
// rising edge on STEP while ENABLE is active moves the carriage one step in
// the direction DIR selects; the limit switch input reads active while the
// carriage is at or behind its trip point.
//
// Faults to inject: a broken limit switch (never active), steps lost when
// pulses come faster than the motor can follow (MaxStepRate) or while the
// driver is disabled, and the hard stops at both ends of travel.
package stepemu
