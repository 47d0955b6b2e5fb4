//go:build !linux

package main

import "syscall"

// childAttr puts the fleet side in its own process group (a Ctrl-C in the
// terminal is the simulator's to pass on).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
