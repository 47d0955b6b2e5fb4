// Package pca9685emu emulates the NXP PCA9685 16-channel 12-bit PWM
// controller's register file on a ticemu.Bus, for the simulated robot's lamp
// and for tests of hal/light (periph's devices/v3/pca9685 driver runs on it
// unchanged).
//
// Modelled from the datasheet (PCA9685 Rev. 4, sections 7.3 and 7.3.1):
// MODE1 (0x00, power-on 0x11: SLEEP and ALLCALL), MODE2 (0x01, power-on
// 0x04), LEDn_ON_L/H and LEDn_OFF_L/H at 0x06+4n (12-bit counts; bit 4 of
// ON_H is full-on, bit 4 of OFF_H full-off, full-off wins), ALL_LED at
// 0xFA..0xFD (write-only, sets every channel), PRE_SCALE at 0xFE (writable
// only while SLEEP is set; frequency = 25 MHz / (4096 × (PRE_SCALE+1))).
// With MODE1's AI bit the register pointer auto-increments after each data
// byte; without it every byte goes to the same register. Writing 1 to
// RESTART clears it.
//
// A chip made with NewTimed (on an untimed bus; on a ticemu.NewTimedBus
// the bus times it, use New) takes each transfer's time on the wire (9 bit
// times per byte with the address, START and STOP, at the bus speed) on
// the simulation's clock, and its outputs change at the STOP (MODE2 OCH
// clear, the power-on setting). OnOutput reports a channel's level at
// each change: the simulated robot drives the camera's lamp with it, so
// a strobe pulse lasts exactly as long as the two I²C writes that switch
// it on and off allow.
package pca9685emu
