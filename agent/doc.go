// Package agent is papscan's long-running agent: one control loop that owns
// the robot's state (ready, scanning, paused, fault...), runs one machine job
// at a time (a magazine, a self-check, a re-home, a jog), turns the panel's
// button presses into actions, shows the state in the panel's LED language,
// tells systemd the truth about its health (READY only once healthy,
// watchdog pings only while the control loop and the running job make
// progress, STOPPING), stops cleanly (the slide being scanned is marked for
// a rerun, the stage parked, results flushed) and serves its status on a
// local unix socket.
//
// Magazines run through scan.Scanner.Magazine (self-tests before and after,
// label-named slides, a journal per magazine in the state directory); the
// agent adds the pause between slides and the storage check
// (ScanHooks.BeforeSlide), keeps the rerun list and the progress from the
// reports, and remembers an unfinished magazine so that after a restart it
// first reports the interrupted slide (INCOMPLETE, rerun) and START resumes
// the magazine from its journal. The self-check is scan.SelfTest, reported
// check by check.
//
// It sees the hardware through hal interfaces and small interfaces of its
// own (Scanner, Delivery), so the same code drives the robot and the
// simulated robot; cmd/papscan wires it.
package agent
