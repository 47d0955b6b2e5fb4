// Package pins opens the robot's GPIO lines as the configuration names them:
// by name through periph's gpioreg (e.g. "GPIO17"), or by chip and line
// offset through the kernel's GPIO character device (host/v3/gpioioctl),
// which reaches lines the device tree leaves unnamed. It also maps a pin's
// configured bias ("up", "down", "none") onto gpio.Pull.
//
// The robot's service (through the assembly point, papscan/robot) uses Open; the
// simulator provides its own opener with the same signature.
package pins
