package main

import "syscall"

// childAttr puts the fleet side in its own process group (a Ctrl-C in the
// terminal is the simulator's to pass on) and has the kernel stop it if
// the simulator dies without stopping it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
