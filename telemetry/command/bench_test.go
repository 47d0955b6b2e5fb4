package command

import (
	"testing"
	"time"
)

// BenchmarkHandle measures one signed status command end to end
// (envelope, Ed25519 verify, strict parse, replay admit in memory, handler,
// reply encode).
func BenchmarkHandle(b *testing.B) {
	r := newRig(b, nil)
	g, err := OpenReplayGuard("", 1<<30, t0.Add(-time.Hour), 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	r.d.o.Replay = g
	msgs := make([][]byte, b.N)
	for i := range msgs {
		msgs[i], _ = mustSign(b, fleetKey, testRobot, TypeStatus, nil, t0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if rep := r.d.Handle(b.Context(), msgs[i]); !rep.OK {
			b.Fatal(describe(rep))
		}
		if _, err := EncodeReply(Reply{ID: "x"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefuseUnsigned measures the cost of refusing a message signed
// with an untrusted key (what a flood costs the robot).
func BenchmarkRefuseUnsigned(b *testing.B) {
	r := newRig(b, func(o *DispatcherOptions) { o.RefusalBurst = 1 })
	msg, _ := mustSign(b, evilKey, testRobot, TypeStatus, nil, t0)
	b.ReportAllocs()
	for b.Loop() {
		r.d.handle(b.Context(), msg)
	}
}
