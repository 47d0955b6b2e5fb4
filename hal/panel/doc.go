// Package panel drives the technician panel's status LEDs on GPIO output
// pins: steady and blinking patterns, set by the agent from the robot's
// state and clocked by the panel's own loop.
//
// Output levels are kept in software and never read back from the pin (a
// periph gpioioctl line that is read becomes an input). Active-low LEDs are
// handled here, so callers think only in on and off.
package panel
