package light

import (
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

func TestGPIOLight(t *testing.T) {
	p := &gpiotest.Pin{N: "lamp", L: gpio.Low}
	l, err := NewGPIO("lamp", p, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Read() != gpio.High || l.Brightness() != 0 {
		t.Fatal("active-low lamp not off after NewGPIO")
	}
	if err := l.SetBrightness(0.3); err != nil || p.Read() != gpio.Low || l.Brightness() != 1 {
		t.Fatalf("SetBrightness(0.3): err %v, level %v, brightness %v", err, p.Read(), l.Brightness())
	}
	for _, bad := range []float64{-0.1, 1.5} {
		if err := l.SetBrightness(bad); err == nil {
			t.Errorf("brightness %g accepted", bad)
		}
	}
	if l.Brightness() != 1 {
		t.Error("a refused level changed the lamp")
	}
}
