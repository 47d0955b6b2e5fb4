package outbox

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"papscan/telemetry"
)

// Publisher is what the Sender publishes through; *telemetry.Client
// implements it.
type Publisher interface {
	// PublishDelivery publishes at QoS 1 and returns after the broker's
	// PUBACK (or an error).
	PublishDelivery(ctx context.Context, d telemetry.Delivery) error
	// Connected reports whether the connection is up right now.
	Connected() bool
}

var _ Publisher = (*telemetry.Client)(nil)

// Sender defaults.
const (
	DefaultWindow        = 64
	DefaultAckTimeout    = 30 * time.Second
	DefaultRetryInterval = time.Second
	// DefaultReplayInterval: one requester's replay requests are honoured
	// at most this often.
	DefaultReplayInterval = 2 * time.Second
	// maxReplayQueue bounds replay requests waiting for the sender.
	maxReplayQueue = 16
	// maxRequesters bounds the requesters remembered for the rate limit.
	maxRequesters = 256
)

// SenderOptions configures a Sender.
type SenderOptions struct {
	// Window bounds the entries published but not yet acked by the fleet.
	// Default DefaultWindow.
	Window int
	// AckTimeout: when the oldest entry in flight has had no fleet ack for
	// this long, every unacked entry is sent again, oldest first. Default
	// DefaultAckTimeout.
	AckTimeout time.Duration
	// RetryInterval is the pause after a failed publish (no PUBACK, not
	// connected) before trying again. Default DefaultRetryInterval.
	RetryInterval time.Duration
	// OnAcked, if set, is called from the sender goroutine with the IDs
	// each fleet ack removed (for metrics and tests). It must not block.
	OnAcked func(ids []string)
	// ReplayInterval: a requester (Replay.Receiver) gets at most one
	// replay request honoured this often; the others are dropped and
	// counted (Stats.ReplaysDropped). Default DefaultReplayInterval.
	ReplayInterval time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Stats are the Sender's counters since NewSender.
type Stats struct {
	Published     uint64 // publishes confirmed by a PUBACK (first sends and resends)
	Resent        uint64 // of which were resends (attempt > 1)
	Acked         uint64 // entries removed by a fleet ack
	PublishErrors uint64 // publishes without PUBACK
	Replays       uint64 // replay requests honoured
	AckTimeouts   uint64 // go-back to the oldest unacked entry after AckTimeout
	// ReplaysDropped counts replay requests not honoured: too frequent
	// from one requester, or too many waiting.
	ReplaysDropped uint64
}

// Sender is the one goroutine that publishes the outbox, in sequence
// order, at QoS 1, and removes entries when the fleet's ack arrives. Its
// Handle* methods are the telemetry.Options hooks: they never block.
type Sender struct {
	ob   *Outbox
	opts SenderOptions
	log  *slog.Logger

	mu          sync.Mutex
	acks        []string
	replays     []telemetry.Replay
	lastReplay  map[string]time.Time // requester -> last replay honoured
	reconnected bool
	wake        chan struct{}

	published, resent, acked, pubErrs, replayN, timeouts, replayDrops atomic.Uint64
}

// NewSender returns a Sender for ob; start it with Run.
func NewSender(ob *Outbox, opts SenderOptions) *Sender {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = DefaultRetryInterval
	}
	if opts.ReplayInterval <= 0 {
		opts.ReplayInterval = DefaultReplayInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Sender{ob: ob, opts: opts, log: opts.Logger.With("component", "outbox-sender"), wake: make(chan struct{}, 1),
		lastReplay: map[string]time.Time{}}
}

func (s *Sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// HandleAck queues a fleet ack (telemetry.Options.OnAck). Never blocks.
func (s *Sender) HandleAck(a telemetry.Ack) {
	s.mu.Lock()
	s.acks = append(s.acks, a.IDs...)
	s.mu.Unlock()
	s.signal()
}

// HandleReplay queues a replay request (telemetry.Options.OnReplay).
// Never blocks. A requester (Replay.Receiver) gets one request honoured
// per ReplayInterval; more, or more than 16 waiting, are dropped and
// counted: whoever may publish replay requests cannot multiply the
// robot's traffic.
func (s *Sender) HandleReplay(r telemetry.Replay) {
	now := time.Now()
	s.mu.Lock()
	last, seen := s.lastReplay[r.Receiver]
	if (seen && now.Sub(last) < s.opts.ReplayInterval && !now.Before(last)) || len(s.replays) >= maxReplayQueue {
		s.mu.Unlock()
		s.replayDrops.Add(1)
		return
	}
	if len(s.lastReplay) >= maxRequesters {
		clear(s.lastReplay)
	}
	s.lastReplay[r.Receiver] = now
	s.replays = append(s.replays, r)
	s.mu.Unlock()
	s.signal()
}

// Reconnected makes the Sender replay every unacked entry, oldest first
// (telemetry.Options.OnConnected). Never blocks.
func (s *Sender) Reconnected() {
	s.mu.Lock()
	s.reconnected = true
	s.mu.Unlock()
	s.signal()
}

// Stats returns the counters.
func (s *Sender) Stats() Stats {
	return Stats{
		Published: s.published.Load(), Resent: s.resent.Load(), Acked: s.acked.Load(),
		PublishErrors: s.pubErrs.Load(), Replays: s.replayN.Load(), AckTimeouts: s.timeouts.Load(),
		ReplaysDropped: s.replayDrops.Load(),
	}
}

// seqRange is a bounded replay request still to send.
type seqRange struct{ from, to uint64 }

type flight struct {
	id string
	at time.Time
}

// Run publishes until ctx is done (then returns ctx.Err()). Everything
// held at start is sent first: the replay at start.
func (s *Sender) Run(ctx context.Context, p Publisher) error {
	inflight := map[uint64]flight{} // sent in this epoch, awaiting the fleet's ack
	byID := map[string]uint64{}
	attempts := map[uint64]int{}
	var cursor uint64 // highest seq sent in this epoch
	var retryAt time.Time
	var pendingAcks []string
	var ranges []seqRange // replay requests with an upper bound, sent before the cursor moves on
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	resetEpoch := func(from uint64) { // resend everything from seq "from" on
		if from == 0 || from <= cursor {
			cursor = max(from, 1) - 1
		}
		for seq, f := range inflight {
			if seq >= from {
				delete(inflight, seq)
				delete(byID, f.id)
			}
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		pendingAcks = append(pendingAcks, s.acks...)
		s.acks = s.acks[:0]
		replays := s.replays
		s.replays = nil
		reconn := s.reconnected
		s.reconnected = false
		s.mu.Unlock()

		if len(pendingAcks) > 0 {
			n, err := s.ob.Ack(pendingAcks...)
			if err != nil {
				// Kept for the next round; meanwhile the entries stay
				// and may be re-sent: duplicates, never loss.
				s.log.Warn("fleet ack not recorded", "ids", len(pendingAcks), "error", err)
				retryAt = time.Now().Add(s.opts.RetryInterval)
			} else {
				s.acked.Add(uint64(n))
				if s.opts.OnAcked != nil && n > 0 {
					s.opts.OnAcked(slices.Clone(pendingAcks))
				}
				for _, id := range pendingAcks {
					if seq, ok := byID[id]; ok {
						delete(inflight, seq)
						delete(attempts, seq)
						delete(byID, id)
					}
				}
				pendingAcks = pendingAcks[:0]
				floor := s.ob.Floor()
				for seq := range attempts {
					if floor == 0 || seq < floor {
						delete(attempts, seq)
					}
				}
			}
		}
		if reconn {
			s.log.Debug("connected: replaying unacked entries", "depth", s.ob.Depth())
			resetEpoch(0)
			retryAt = time.Time{}
		}
		for _, r := range replays {
			if r.OutboxSession != "" && r.OutboxSession != s.ob.Session() {
				s.log.Info("replay request for another outbox session ignored", "session", r.OutboxSession)
				continue
			}
			s.replayN.Add(1)
			s.log.Info("fleet asked for a replay", "receiver", r.Receiver, "from_seq", r.FromSeq, "to_seq", r.ToSeq)
			if r.ToSeq == 0 {
				resetEpoch(r.FromSeq) // no upper bound: everything from from_seq on
			} else {
				ranges = append(ranges, seqRange{from: max(r.FromSeq, 1), to: r.ToSeq})
			}
		}
		now := time.Now()
		var oldest time.Time
		for _, f := range inflight {
			if oldest.IsZero() || f.at.Before(oldest) {
				oldest = f.at
			}
		}
		if !oldest.IsZero() && now.Sub(oldest) >= s.opts.AckTimeout {
			s.timeouts.Add(1)
			s.log.Info("no fleet ack in time: sending unacked entries again", "in_flight", len(inflight), "ack_timeout", s.opts.AckTimeout)
			resetEpoch(0)
			oldest = time.Time{}
		}

		// Bounded replays first: exactly [from, to], whatever the cursor.
		for len(ranges) > 0 && !now.Before(retryAt) && len(inflight) < s.opts.Window && p.Connected() {
			r := &ranges[0]
			batch, err := s.ob.Pending(r.from-1, s.opts.Window-len(inflight))
			if err != nil {
				s.log.Error("outbox unreadable", "error", err)
				retryAt = now.Add(s.opts.RetryInterval)
				break
			}
			batch = slices.DeleteFunc(batch, func(e Entry) bool { return e.Seq > r.to })
			if len(batch) == 0 {
				ranges = ranges[1:]
				continue
			}
			floor := s.ob.Floor()
			for _, e := range batch {
				attempts[e.Seq]++
				if err := p.PublishDelivery(ctx, s.ob.Delivery(e, floor, attempts[e.Seq])); err != nil {
					s.pubErrs.Add(1)
					if ctx.Err() != nil {
						return ctx.Err()
					}
					retryAt = time.Now().Add(s.opts.RetryInterval)
					break
				}
				s.published.Add(1)
				if attempts[e.Seq] > 1 {
					s.resent.Add(1)
				}
				t := time.Now()
				inflight[e.Seq] = flight{id: e.ID, at: t}
				byID[e.ID] = e.Seq
				r.from = e.Seq + 1
				if oldest.IsZero() {
					oldest = t
				}
			}
			if r.from > r.to {
				ranges = ranges[1:]
			}
		}
		if !now.Before(retryAt) && len(inflight) < s.opts.Window && p.Connected() {
			batch, err := s.ob.Pending(cursor, s.opts.Window-len(inflight))
			if err != nil {
				s.log.Error("outbox unreadable", "error", err)
				retryAt = now.Add(s.opts.RetryInterval)
			}
			floor := s.ob.Floor()
			for _, e := range batch {
				attempts[e.Seq]++
				err := p.PublishDelivery(ctx, s.ob.Delivery(e, floor, attempts[e.Seq]))
				if err != nil {
					s.pubErrs.Add(1)
					if ctx.Err() != nil {
						return ctx.Err()
					}
					s.log.Debug("publish not confirmed; will retry", "seq", e.Seq, "id", e.ID, "error", err)
					retryAt = time.Now().Add(s.opts.RetryInterval)
					break
				}
				s.published.Add(1)
				if attempts[e.Seq] > 1 {
					s.resent.Add(1)
				}
				t := time.Now()
				inflight[e.Seq] = flight{id: e.ID, at: t}
				byID[e.ID] = e.Seq
				cursor = e.Seq
				if oldest.IsZero() {
					oldest = t
				}
			}
		}

		// Sleep until something happens: a Put, an ack, a replay or
		// reconnect, the oldest in-flight entry's ack deadline, or the
		// retry time.
		wait := time.Hour
		if !oldest.IsZero() {
			wait = min(wait, time.Until(oldest.Add(s.opts.AckTimeout)))
		}
		if !retryAt.IsZero() {
			wait = min(wait, time.Until(retryAt))
		}
		if len(pendingAcks) > 0 || !p.Connected() {
			wait = min(wait, s.opts.RetryInterval)
		}
		timer.Reset(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.wake:
		case <-s.ob.Changed():
		case <-timer.C:
		}
	}
}
