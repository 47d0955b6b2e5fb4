package stepdir

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/physic"

	"papscan/hal"
	"papscan/hal/sim"
)

// edgeClock records the time of every rising edge on STEP.
type edgeClock struct {
	gpiotest.Pin
	clock hal.Clock
	mu    sync.Mutex
	high  bool
	times []time.Time
}

func (p *edgeClock) Out(l gpio.Level) error {
	if l == gpio.High && !p.high {
		p.mu.Lock()
		p.times = append(p.times, p.clock.Now())
		p.mu.Unlock()
	}
	p.high = l == gpio.High
	return nil
}

// lateClock is a virtual clock whose sleeps overrun by late every n-th call.
type lateClock struct {
	*sim.Clock
	n, calls int
	late     time.Duration
}

func (c *lateClock) Sleep(ctx context.Context, d time.Duration) error {
	c.calls++
	if c.calls%c.n == 0 {
		d += c.late
	}
	return c.Clock.Sleep(ctx, d)
}

func benchAxis(tb testing.TB, clk hal.Clock) (*Axis, *edgeClock) {
	step := &edgeClock{clock: clk}
	ax, err := New(Pins{Step: step, Dir: &gpiotest.Pin{N: "dir"}, Enable: &gpiotest.Pin{N: "en"}, Limit: &gpiotest.Pin{N: "limit"}}, clk, Options{
		Name: "bench", StepsPerUM: 0.1, MaxSpeed: 20 * physic.MilliMetrePerSecond, Acceleration: 400_000,
		TravelMin: 0, TravelMax: 100 * physic.MilliMetre,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ax.homed = true // no switch on the bench
	return ax, step
}

// intervals returns, for each pulse after the first, the actual interval
// minus the scheduled one.
func intervals(ax *Axis, ts []time.Time) []time.Duration {
	n := float64(len(ts))
	var out []time.Duration
	for k := 1; k < len(ts); k++ {
		want := ProfileTime(float64(k)+0.5, n, ax.speed, ax.accel) - ProfileTime(float64(k)-0.5, n, ax.speed, ax.accel)
		out = append(out, ts[k].Sub(ts[k-1])-time.Duration(want*float64(time.Second)))
	}
	return out
}

// TestLateWakeupsNeverBurst: when sleeps overrun (a loaded CPU), the
// driver stretches the schedule: no interval is shorter than the profile's.
func TestLateWakeupsNeverBurst(t *testing.T) {
	clk := &lateClock{Clock: sim.NewClock(), n: 37, late: 7 * time.Millisecond}
	ax, step := benchAxis(t, clk)
	if err := hal.MoveTo(context.Background(), ax, 10*physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
	if len(step.times) != 1000 {
		t.Fatalf("%d pulses", len(step.times))
	}
	for k, d := range intervals(ax, step.times) {
		if d < -time.Microsecond {
			t.Fatalf("interval %d is %s shorter than the profile: a catch-up burst", k+1, -d)
		}
	}
}

// BenchmarkStepTiming measures, on the wall clock of the machine it runs on,
// how much later than scheduled each step pulse leaves at the highest
// allowed rate (2 kHz), as the excess of each interval over the profile's,
// and reports the median, 99th percentile and worst in µs. The GPIO writes
// are gpiotest pins, so this is the Go timer and scheduler alone; on the
// robot add the ioctl time of two writes.
func BenchmarkStepTiming(b *testing.B) {
	var late []time.Duration
	for b.Loop() {
		ax, step := benchAxis(b, hal.SystemClock{})
		if err := hal.MoveTo(context.Background(), ax, 10*physic.MilliMetre); err != nil {
			b.Fatal(err)
		}
		late = append(late, intervals(ax, step.times)...)
	}
	slices.Sort(late)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(late[len(late)/2]), "p50-late-µs")
	b.ReportMetric(us(late[len(late)*99/100]), "p99-late-µs")
	b.ReportMetric(us(late[len(late)-1]), "max-late-µs")
}
