// Package vmtest runs hal/v4l2 and hal/camera against a real V4L2 driver:
// the kernel's vivid module, in a small qemu VM.
//
// scripts/vm/vivid.sh compiles this package's tests (build tag "vivid")
// into a static binary, packs it with Debian's vivid module and its
// dependencies into an initramfs, and boots Debian's kernel under qemu
// (software emulation, no KVM). The test binary is the VM's /init: as PID
// 1 it mounts proc, sysfs and devtmpfs, loads the modules with
// finit_module, waits for /dev/video0, runs the tests, prints a marker
// line (Marker + "PASS" or "FAIL") on the serial console and powers the VM
// off. The script checks the marker.
//
// The PID-1 helpers (Init, LoadModules, PowerOff) are papscan/internal/vmguest's;
// the tests need the VM.
package vmtest

// Marker starts the result line the host looks for on the console.
const Marker = "PAPSCAN-VIVID-RESULT: "
