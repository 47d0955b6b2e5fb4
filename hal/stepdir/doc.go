// Package stepdir implements hal.Axis for a stepper motor behind a plain
// STEP/DIR/ENABLE driver chip (A4988, DRV8825, TMC2209 in step/dir mode)
// on three GPIO outputs, with a limit switch on a GPIO input for homing. It
// is the low-cost alternative to a Pololu Tic (hal/ticaxis) for slow axes
// such as a slide loader.
//
// # Step timing, honestly
//
// The agent generates every step pulse itself from a Go goroutine: it sets
// STEP high then low (two GPIO writes, each an ioctl on /dev/gpiochipN that
// takes a few µs on a Raspberry Pi 4 class CPU; that is the pulse width, well
// above the 1–2 µs the driver chips need) and then sleeps on the hal.Clock
// until the next step's time on a trapezoidal velocity profile, computed
// from the move's start. Each pulse can be late: a Go timer wakes some tens
// to hundreds of µs late on an idle Linux machine, and a GC pause or a busy
// CPU delays it by milliseconds. BenchmarkStepTiming measures it as the
// excess of each step interval over the profile's at 2 kHz; on the shared
// 2-core AMD EPYC build VM at load average 11–14 it measured p50 0.2–0.6 ms,
// p99 3–10 ms and worst 20–45 ms: far from the 500 µs period. A late pulse never triggers a catch-up burst: the rest of the
// schedule is shifted, so no interval is ever shorter than the profile's and
// the move just takes longer. What remains is a pause followed by the
// profile's speed, a velocity step the motor must be able to start from:
// keep a stepdir axis's max_speed below the motor's start-stop (pull-in)
// rate. Hence:
//
//   - Options.MaxStepRate caps the step rate; the default and the hard
//     ceiling is 2 kHz (DefaultMaxStepRate), a 500 µs period: above the
//     typical lateness of an idle controller, not of a busy one. For a
//     dependable axis stay at a few hundred steps/s (a slide loader needs
//     no more), keep the controller's CPU lightly loaded, and use a Tic for
//     anything fast or precise.
//   - Steps are open loop: a stalled motor is not detected. Homing against
//     the limit switch restores the reference; a limit switch that becomes
//     active while moving towards it outside homing is a hal.FaultLimit.
//
// Options.Backlash makes every target be approached from one side, as in
// hal/ticaxis: a move that would arrive from the other side overshoots by
// the backlash first.
//
// # Safety rules
//
// Moves are refused before homing (hal.ErrNotHomed), outside the travel
// (hal.ErrOutOfTravel), while another move runs, and while a fault is
// latched. Home fails with a hal.FaultLimit wrapping hal.ErrTimeout when the
// switch never triggers within Options.HomingTimeout. Halt stops the pulses
// at once (it returns after the step goroutine has stopped) and unhomes the
// axis. A GPIO write error is a hal.FaultDriver. Faults latch until
// ClearFault and a new Home. The driver stays enabled (holding torque) after
// a fault; Close disables it.
package stepdir
