package fleet

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/telemetry"
)

// Options configures a Receiver.
type Options struct {
	Brokers []string
	// ClientID, stable and unique; default "papscan-fleet".
	ClientID string
	// TopicPrefix; default telemetry.DefaultTopicPrefix.
	TopicPrefix string
	// Robots to follow; default {"+"} (every robot under the prefix).
	Robots             []string
	Username, Password string
	TLS                *tls.Config
	// KeepAlive, default 30 s; MaxReconnectInterval, default 10 s.
	KeepAlive, MaxReconnectInterval time.Duration
	// ReplayInterval: at most one replay request per robot this often.
	// Default 5 s.
	ReplayInterval time.Duration
	// Receiver names this receiver in acks; default ClientID.
	Receiver string
	// SignAck, if set, signs every ack before it is published (robots
	// with agent.mqtt.ack_keys refuse unsigned acks); e.g. a closure over
	// telemetry/command.SignAck and the receiver's key.
	SignAck func(*telemetry.Ack)
	// SignReplay, if set, signs every replay request the same way (robots
	// verify them too; telemetry/command.SignReplay).
	SignReplay func(*telemetry.Replay)
	// OnStored, if set, is called after each commit with the records that
	// were new (not duplicates). It must not block for long.
	OnStored func([]Record)
	Logger   *slog.Logger
}

// Stats are a Receiver's counters.
type Stats struct {
	Received   uint64 // messages handed over by the broker
	Stored     uint64 // new records committed
	Duplicates uint64 // records that were already held (acked again)
	Dropped    uint64 // not queued (queue full) or not parseable; the robot re-sends
	AcksSent   uint64 // ack messages published
	Replays    uint64 // replay requests published
}

type incoming struct {
	env telemetry.Envelope
	raw json.RawMessage
	at  time.Time
}

// Receiver is the reference fleet receiver: it subscribes to robots'
// results and events, commits them to its Store (fsync), acks each robot
// after the commit, and asks for a replay when a robot's sequence numbers
// show a gap.
type Receiver struct {
	opts  Options
	store *Store
	log   *slog.Logger
	mc    paho.Client
	queue chan incoming

	received, stored, dups, dropped, acks, replays atomic.Uint64

	mu         sync.Mutex
	lastReplay map[string]time.Time

	done chan struct{}
}

// Start connects and starts the receiver; it runs until ctx is done or
// Close. Connection losses are handled inside (paho auto-reconnect, every
// subscription renewed on connect).
func Start(ctx context.Context, store *Store, opts Options) (*Receiver, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("fleet: no broker URL")
	}
	if opts.ClientID == "" {
		opts.ClientID = "papscan-fleet"
	}
	if opts.TopicPrefix == "" {
		opts.TopicPrefix = telemetry.DefaultTopicPrefix
	}
	if err := telemetry.ValidateTopicPrefix(opts.TopicPrefix); err != nil {
		return nil, err
	}
	if len(opts.Robots) == 0 {
		opts.Robots = []string{"+"}
	}
	for _, r := range opts.Robots {
		if r != "+" {
			if err := telemetry.ValidateRobotID(r); err != nil {
				return nil, err
			}
		}
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	if opts.MaxReconnectInterval <= 0 {
		opts.MaxReconnectInterval = 10 * time.Second
	}
	if opts.ReplayInterval <= 0 {
		opts.ReplayInterval = 5 * time.Second
	}
	if opts.Receiver == "" {
		opts.Receiver = opts.ClientID
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Receiver{
		opts: opts, store: store, log: opts.Logger.With("component", "fleet"),
		queue: make(chan incoming, 8192), lastReplay: map[string]time.Time{}, done: make(chan struct{}),
	}
	// Persistent session: the broker queues QoS 1 results while we are away.
	po := telemetry.SessionOptions(telemetry.Session{
		Brokers: opts.Brokers, ClientID: opts.ClientID,
		Username: opts.Username, Password: opts.Password, TLS: opts.TLS,
		KeepAlive: opts.KeepAlive, MaxReconnectInterval: opts.MaxReconnectInterval,
	})
	po.SetConnectTimeout(10 * time.Second)
	po.SetWriteTimeout(10 * time.Second)
	po.SetDefaultPublishHandler(r.handle)
	po.SetOnConnectHandler(func(c paho.Client) { go r.subscribe(c) })
	po.SetConnectionLostHandler(func(_ paho.Client, err error) {
		r.log.Warn("fleet: connection lost; reconnecting", "error", err)
	})
	r.mc = paho.NewClient(po)
	tok := r.mc.Connect()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			r.mc.Disconnect(0)
			return nil, fmt.Errorf("fleet: connect %v: %w", opts.Brokers, err)
		}
	case <-ctx.Done():
		go r.mc.Disconnect(0)
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		go r.mc.Disconnect(0)
		return nil, fmt.Errorf("fleet: no connection to %v within 30 s", opts.Brokers)
	}
	go r.run(ctx)
	return r, nil
}

// Filters returns the subscriptions of this receiver.
func (r *Receiver) Filters() []string {
	var f []string
	for _, rb := range r.opts.Robots {
		f = append(f, r.opts.TopicPrefix+"/"+rb+"/result/#", r.opts.TopicPrefix+"/"+rb+"/event")
	}
	return f
}

func (r *Receiver) subscribe(c paho.Client) {
	subs := map[string]byte{}
	for _, f := range r.Filters() {
		subs[f] = 1
	}
	tok := c.SubscribeMultiple(subs, nil)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		r.log.Warn("fleet: subscribe failed", "error", tok.Error())
		return
	}
	r.log.Info("fleet: subscribed", "filters", r.Filters())
}

// handle is paho's handler: parse and queue, never block.
func (r *Receiver) handle(_ paho.Client, m paho.Message) {
	r.received.Add(1)
	var e telemetry.Envelope
	raw := append(json.RawMessage(nil), m.Payload()...)
	if err := json.Unmarshal(raw, &e); err != nil || e.Schema != telemetry.Schema {
		r.dropped.Add(1)
		r.log.Warn("fleet: not a papscan envelope", "topic", m.Topic(), "error", err)
		return
	}
	if err := telemetry.ValidateRobotID(e.RobotID); err != nil {
		r.dropped.Add(1)
		r.log.Warn("fleet: bad robot_id", "topic", m.Topic(), "error", err)
		return
	}
	switch {
	case e.Kind == telemetry.KindResult && e.ResultID != "":
	case e.Kind == telemetry.KindEvent && e.EventID != "":
	default:
		// Not durable (no ID to ack): nothing to store.
		r.log.Debug("fleet: message without result_id/event_id ignored", "topic", m.Topic(), "kind", e.Kind)
		return
	}
	select {
	case r.queue <- incoming{env: e, raw: raw, at: time.Now().UTC()}:
	default:
		r.dropped.Add(1) // not acked: the robot sends it again
	}
}

func (r *Receiver) run(ctx context.Context) {
	defer close(r.done)
	for {
		var batch []incoming
		select {
		case <-ctx.Done():
			return
		case in := <-r.queue:
			batch = append(batch, in)
		}
	drain:
		for len(batch) < 512 {
			select {
			case in := <-r.queue:
				batch = append(batch, in)
			default:
				break drain
			}
		}
		res, err := r.store.commit(batch)
		if err != nil {
			// Not stored, so not acked: the robots send them again.
			r.log.Error("fleet: commit failed; not acking", "messages", len(batch), "error", err)
			r.dropped.Add(uint64(len(batch)))
			continue
		}
		r.stored.Add(uint64(res.stored))
		r.dups.Add(uint64(res.dups))
		if r.opts.OnStored != nil && len(res.fresh) > 0 {
			r.opts.OnStored(res.fresh)
		}
		for robot, ids := range res.ack {
			for len(ids) > 0 {
				n := min(len(ids), 1000)
				r.ack(robot, ids[:n])
				ids = ids[n:]
			}
		}
		for _, g := range res.gaps {
			r.maybeReplay(g)
		}
	}
}

func (r *Receiver) ack(robot string, ids []string) {
	a := telemetry.Ack{Schema: telemetry.Schema, Kind: telemetry.KindAck, RobotID: robot, Receiver: r.opts.Receiver, IDs: ids}
	if r.opts.SignAck != nil {
		r.opts.SignAck(&a)
	}
	b, _ := json.Marshal(a)
	// Not waited for: a lost ack only means the robot sends the entry
	// again and we ack it again.
	r.mc.Publish(telemetry.AckTopic(r.opts.TopicPrefix, robot), 1, false, b)
	r.acks.Add(1)
}

func (r *Receiver) maybeReplay(g Gap) {
	r.mu.Lock()
	key := g.RobotID + "\x00" + g.OutboxSession
	if time.Since(r.lastReplay[key]) < r.opts.ReplayInterval {
		r.mu.Unlock()
		return
	}
	r.lastReplay[key] = time.Now()
	r.mu.Unlock()
	r.log.Info("fleet: sequence gap; asking for a replay", "robot", g.RobotID, "outbox_session", g.OutboxSession, "from_seq", g.From, "to_seq", g.To)
	rp := telemetry.Replay{Schema: telemetry.Schema, Kind: telemetry.KindReplay, RobotID: g.RobotID, Receiver: r.opts.Receiver,
		OutboxSession: g.OutboxSession, FromSeq: g.From, ToSeq: g.To}
	if r.opts.SignReplay != nil {
		r.opts.SignReplay(&rp)
	}
	b, _ := json.Marshal(rp)
	r.mc.Publish(telemetry.ReplayTopic(r.opts.TopicPrefix, g.RobotID), 1, false, b)
	r.replays.Add(1)
}

// Stats returns the counters.
func (r *Receiver) Stats() Stats {
	return Stats{Received: r.received.Load(), Stored: r.stored.Load(), Duplicates: r.dups.Load(),
		Dropped: r.dropped.Load(), AcksSent: r.acks.Load(), Replays: r.replays.Load()}
}

// Close disconnects (after the run loop stopped, when ctx is done, or at
// once) and waits at most for ctx.
func (r *Receiver) Close() {
	r.mc.Disconnect(250)
}

// Done is closed when the run loop has stopped (its ctx ended).
func (r *Receiver) Done() <-chan struct{} { return r.done }
