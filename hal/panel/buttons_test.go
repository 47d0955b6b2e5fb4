package panel

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"papscan/hal"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func TestDebouncer(t *testing.T) {
	type step struct {
		at      int // ms
		raw     bool
		level   bool
		changed bool
		since   int // ms, when changed
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"clean press and release", []step{
			{0, true, false, false, 0}, {10, true, false, false, 0}, {20, true, true, true, 0},
			{500, false, true, false, 0}, {520, false, false, true, 500},
		}},
		{"bounce restarts the delay", []step{
			{0, true, false, false, 0}, {5, false, false, false, 0}, {8, true, false, false, 0},
			{20, true, false, false, 0}, {28, true, true, true, 8},
		}},
		{"a glitch shorter than the delay is ignored", []step{
			{0, true, false, false, 0}, {10, false, false, false, 0}, {50, false, false, false, 0},
		}},
		{"a release glitch while held is ignored", []step{
			{0, true, false, false, 0}, {30, true, true, true, 0},
			{100, false, true, false, 0}, {110, true, true, false, 0}, {200, true, true, false, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Debouncer{Delay: 20 * time.Millisecond}
			for _, s := range tc.steps {
				lvl, ch, at := d.Sample(s.raw, ms(s.at))
				if lvl != s.level || ch != s.changed || (ch && !at.Equal(ms(s.since))) {
					t.Fatalf("at %dms raw %v: got level %v changed %v since %v; want %v %v %dms",
						s.at, s.raw, lvl, ch, at.Sub(t0), s.level, s.changed, s.since)
				}
			}
		})
	}
}

// edge is a level change on one button's pin, after a delay.
type edge struct {
	button string
	after  time.Duration
	level  bool // pressed
}

func press(button string, held time.Duration, bounce bool) []edge {
	var e []edge
	if bounce {
		e = append(e, edge{button, 0, true}, edge{button, 2 * time.Millisecond, false}, edge{button, 3 * time.Millisecond, true})
	} else {
		e = append(e, edge{button, 0, true})
	}
	e = append(e, edge{button, held, false})
	if bounce {
		e = append(e, edge{button, time.Millisecond, true}, edge{button, 4 * time.Millisecond, false})
	}
	return e
}

func TestButtonSequences(t *testing.T) {
	const long = 2 * time.Second
	for _, tc := range []struct {
		name  string
		edges []edge
		want  []hal.Press
	}{
		{"short", press("start", 300*time.Millisecond, false), []hal.Press{{Button: "start"}}},
		{"short with contact bounce", press("start", 300*time.Millisecond, true), []hal.Press{{Button: "start"}}},
		{"long", press("abort", 2500*time.Millisecond, true), []hal.Press{{Button: "abort", Long: true}}},
		{"just under long", press("ack", long-100*time.Millisecond, false), []hal.Press{{Button: "ack"}}},
		{"glitch is no press", []edge{{"start", 0, true}, {"start", 5 * time.Millisecond, false}}, nil},
		{"two presses", append(press("start", 200*time.Millisecond, true), append([]edge{{"start", 300 * time.Millisecond, false}}, press("ack", 3*time.Second, false)...)...),
			[]hal.Press{{Button: "start"}, {Button: "ack", Long: true}}},
		{"chord short", []edge{{"start", 0, true}, {"ack", 50 * time.Millisecond, true}, {"start", 300 * time.Millisecond, false}, {"ack", 30 * time.Millisecond, false}},
			[]hal.Press{{Button: "ack+start"}}},
		{"chord long, with bounce", []edge{{"ack", 0, true}, {"ack", 2 * time.Millisecond, false}, {"ack", time.Millisecond, true},
			{"start", 100 * time.Millisecond, true}, {"ack", 2500 * time.Millisecond, false}, {"start", 500 * time.Millisecond, false}},
			[]hal.Press{{Button: "ack+start", Long: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pins := map[string]*gpiotest.Pin{}
				var bs []Button
				for _, n := range []string{"start", "abort", "ack"} {
					// Active low, pulled up: idle high.
					p := &gpiotest.Pin{N: n, L: gpio.High, EdgesChan: make(chan gpio.Level, 4)}
					pins[n] = p
					bs = append(bs, Button{Name: n, Pin: p, ActiveLow: true, Pull: gpio.PullUp})
				}
				b, err := NewButtons(bs, ButtonOptions{Debounce: 20 * time.Millisecond, LongPress: long})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error)
				go func() { done <- b.Run(ctx) }()
				var got []hal.Press
				collected := make(chan struct{})
				go func() {
					for p := range b.Presses() {
						got = append(got, p)
					}
					close(collected)
				}()
				for _, e := range tc.edges {
					time.Sleep(e.after)
					pins[e.button].EdgesChan <- gpio.Level(!e.level) // active low
				}
				time.Sleep(time.Second)
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				<-collected
				if len(got) != len(tc.want) {
					t.Fatalf("got %d presses %+v, want %+v", len(got), got, tc.want)
				}
				for i := range got {
					if got[i].Button != tc.want[i].Button || got[i].Long != tc.want[i].Long || got[i].At.IsZero() {
						t.Errorf("press %d: got %+v, want %+v", i, got[i], tc.want[i])
					}
				}
			})
		})
	}
}

func TestNewButtonsRejects(t *testing.T) {
	p := &gpiotest.Pin{N: "p", EdgesChan: make(chan gpio.Level, 1)}
	for _, tc := range []struct {
		name string
		bs   []Button
		o    ButtonOptions
	}{
		{"no pin", []Button{{Name: "a"}}, ButtonOptions{}},
		{"plus in name", []Button{{Name: "a+b", Pin: p}}, ButtonOptions{}},
		{"duplicate", []Button{{Name: "a", Pin: p}, {Name: "a", Pin: p}}, ButtonOptions{}},
		{"long <= debounce", []Button{{Name: "a", Pin: p}}, ButtonOptions{Debounce: time.Second, LongPress: time.Second}},
		{"pin without edges", []Button{{Name: "a", Pin: &gpiotest.Pin{N: "x"}}}, ButtonOptions{}},
	} {
		if _, err := NewButtons(tc.bs, tc.o); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}
