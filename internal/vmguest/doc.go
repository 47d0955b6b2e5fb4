// Package vmguest holds what a Go test binary needs to run as PID 1 (the
// /init of an initramfs) in the project's small qemu VMs: Init mounts
// proc, sysfs, devtmpfs and a tmpfs on /tmp and points stdin, stdout and
// stderr at the serial console; LoadModules loads the kernel modules the
// VM script packed (in its order file); WaitFor waits for a device node;
// IfUp gives a network interface an IPv4 address and brings it up (qemu's
// user networking); PowerOff syncs and powers the VM off.
//
// Users: hal/v4l2/vmtest (scripts/vm/vivid.sh, the camera driver against
// the kernel's vivid module) and telemetry/outbox/powercut
// (scripts/vm/powercut.sh, the outbox across power cuts). The helpers build
// on every Linux target; only the VMs run them as PID 1.
package vmguest
