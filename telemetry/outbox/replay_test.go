package outbox_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/outbox"
)

// TestReplayHonoursToSeqAndRate (finding 7): a replay request for seq
// 3..4 used to resend everything from 3 to the end (to_seq ignored), and
// every request was honoured: 50,000 replay requests caused 37x the
// normal resend traffic. Now only [from_seq, to_seq] goes again, and one
// requester gets at most one replay per ReplayInterval (the others are
// counted, not honoured).
func TestReplayHonoursToSeqAndRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ob := open(t, filepath.Join(t.TempDir(), "outbox.db"), nil)
		for i := range 10 {
			if _, err := ob.PutResult(fmt.Sprintf("S%d", i), telemetry.NewID(), []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
		s := outbox.NewSender(ob, outbox.SenderOptions{Window: 64, AckTimeout: time.Hour, ReplayInterval: 5 * time.Second, Logger: quiet()})
		pub := &fakePub{up: true, sent: make(chan telemetry.Delivery, 1000)}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() { _ = s.Run(ctx, pub) }()
		for range 10 {
			<-pub.sent
		}
		synctest.Wait()

		s.HandleReplay(telemetry.Replay{OutboxSession: ob.Session(), Receiver: "fleet-1", FromSeq: 3, ToSeq: 4})
		synctest.Wait()
		var got []uint64
		for len(pub.sent) > 0 {
			got = append(got, (<-pub.sent).OutboxSeq)
		}
		if len(got) != 2 || got[0] != 3 || got[1] != 4 {
			t.Fatalf("replay of 3..4 resent %v", got)
		}

		// A flood from one requester: one more honoured after the
		// interval, the rest dropped.
		for range 1000 {
			s.HandleReplay(telemetry.Replay{OutboxSession: ob.Session(), Receiver: "fleet-1", FromSeq: 1})
		}
		synctest.Wait()
		if n := len(pub.sent); n != 0 {
			t.Fatalf("a flood within the interval resent %d entries", n)
		}
		time.Sleep(5 * time.Second)
		s.HandleReplay(telemetry.Replay{OutboxSession: ob.Session(), Receiver: "fleet-1", FromSeq: 9, ToSeq: 9})
		// Another requester is not held back by the first one's flood.
		s.HandleReplay(telemetry.Replay{OutboxSession: ob.Session(), Receiver: "fleet-2", FromSeq: 10, ToSeq: 10})
		synctest.Wait()
		got = got[:0]
		for len(pub.sent) > 0 {
			got = append(got, (<-pub.sent).OutboxSeq)
		}
		if len(got) != 2 {
			t.Fatalf("after the interval: resent %v, want seq 9 and 10", got)
		}
		if st := s.Stats(); st.Replays != 3 || st.ReplaysDropped != 1000 {
			t.Fatalf("stats %+v: want 3 replays honoured, 1000 dropped", st)
		}
	})
}
