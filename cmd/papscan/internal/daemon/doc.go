// Package daemon is papscan's long-running agent: one control loop that owns
// the robot's state (ready, scanning, paused, fault...), runs one machine job
// at a time (a magazine, a self-check, a re-home, a jog), turns the panel's
// button presses into actions, shows the state in the panel's LED language,
// tells systemd the truth about its health (READY only once healthy,
// watchdog pings only while the control loop and the running job make
// progress, STOPPING), stops cleanly (the slide being scanned is marked for
// a rerun, the stage parked, results flushed) and serves its status on a
// local unix socket.
//
// It sees the hardware through hal interfaces and small interfaces of its
// own (Scanner, Delivery), so the same code drives the robot and the
// simulated robot; cmd/papscan wires it.
package daemon
