// Package panel drives the technician panel on GPIO: the status LEDs and
// the push buttons.
//
// LEDs show steady and blinking patterns and blink codes, set by the agent
// from the robot's state through the LED language in Lights (the README's
// technician table) and clocked by the panel's own loop. Output levels are
// kept in software and never read back from the pin (a periph gpioioctl line
// that is read becomes an input). Active-low LEDs are handled here, so
// callers think only in on and off.
//
// Buttons are debounced here (periph's gpioutil.Debounce ignores its
// arguments): Debouncer is pure logic over explicit times, and Buttons
// decodes short presses, long presses and chords of several buttons.
package panel
