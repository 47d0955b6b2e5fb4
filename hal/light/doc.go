// Package light drives the transmitted-light illumination. GPIO switches a
// lamp on or off through one output pin; dimmable drivers (a PCA9685 PWM
// channel) implement the same hal.Light.
package light
