package fleet

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
	Robots []string
	// Share, if set, subscribes through the MQTT shared subscription
	// "$share/<Share>/<filter>": every receiver of the group gets a share
	// of the robots' traffic, and one that stops (or is killed) loses
	// nothing: what it had not acked is re-sent by the robots and reaches
	// another. A shared receiver uses a clean session, so the broker does
	// not queue traffic for a receiver that is gone.
	Share string
	// Sites: the receiver runs at the centre, behind site brokers bridged
	// with the remote prefix "sites/<site>/" (README, "Sites and a central
	// broker"). It subscribes to "sites/+/<prefix>/..." and answers each
	// robot on its own site's topics.
	Sites bool
	// Site labels the records of a receiver that is not behind bridges
	// (Sites false); default "".
	Site               string
	Username, Password string
	TLS                *tls.Config
	// KeepAlive, default 30 s; MaxReconnectInterval, default 10 s.
	KeepAlive, MaxReconnectInterval time.Duration
	// ReplayInterval: a sequence gap is asked for only once it has lasted
	// this long (several receivers commit a robot's stream out of order),
	// and at most once per interval per robot. Default 5 s.
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
	// OnAcked, if set, is called after the acks of a commit were handed
	// to the client.
	OnAcked func(n int)
	// QueueBytes bounds the messages waiting for a commit; past it a
	// message is dropped unacked (the robot re-sends it). Default 256 MiB.
	QueueBytes int64
	Logger     *slog.Logger
}

// Stats are a Receiver's counters.
type Stats struct {
	Received    uint64 // messages handed over by the broker
	Stored      uint64 // new records committed
	Duplicates  uint64 // records that were already held (acked again)
	Quarantined uint64 // messages stored as refused (bad image, not an envelope)
	Dropped     uint64 // not committed (queue full, commit failed); the robot re-sends
	AcksSent    uint64 // ack messages published
	Replays     uint64 // replay requests published
	CommitFails uint64 // commits that failed (not acked)
}

// Item is one message a Backend commits.
type Item struct {
	Kind    string // telemetry.KindResult, KindEvent, KindImage, or KindInvalid
	RobotID string
	// ID is the ack key: result_id, event_id or image_id ("" for
	// KindInvalid, which is never acked).
	ID       string
	SlideID  string
	ResultID string // image: the result it belongs to
	Event    string
	Site     string
	Topic    string
	// Outbox stream position (0 when the message has none).
	OutboxSession string
	Seq, Floor    uint64
	ReceivedAt    time.Time
	// Raw is the message as received. For KindInvalid it is cut to
	// MaxInvalidBytes.
	Raw json.RawMessage
	// Image is the validated image message (kind image); nil when the
	// image was refused, and then Reject says why.
	Image *telemetry.ImageMessage
	// Reject says why the message is kept in quarantine (an image that
	// failed validation, a message that is not a papscan envelope).
	Reject string
}

// KindInvalid marks a message that is not a papscan envelope (or has no
// usable robot ID): it is quarantined, never acked.
const KindInvalid = "invalid"

// MaxInvalidBytes is how much of a refused message is kept.
const MaxInvalidBytes = 64 << 10

// Committed says what one Backend.Commit did.
type Committed struct {
	Fresh []Record // the new records (Envelope not set)
	Dups  int
	// Gaps: the streams of the batch that have a missing run below their
	// highest sequence number after the commit.
	Gaps []Gap
}

// Backend is the durable store a Receiver commits to: every item of a
// batch is held (or was already held: then nothing changes) when Commit
// returns nil, and only then is it acked. Commit must be safe to call from
// several receivers (processes) at once.
type Backend interface {
	Commit(ctx context.Context, batch []Item) (Committed, error)
	// StreamGap returns the first missing run of one stream, if any.
	StreamGap(ctx context.Context, robot, session string) (Gap, bool, error)
}

var _ Backend = (*Store)(nil)

// Receiver is the reference fleet receiver: it subscribes to robots'
// results, images and events, commits them to its Backend, acks each robot
// after the commit, and asks for a replay when a robot's sequence numbers
// show a gap that lasts.
type Receiver struct {
	opts    Options
	store   Backend
	log     *slog.Logger
	mc      paho.Client
	queue   chan Item
	qbytes  atomic.Int64
	pending map[gapKey]time.Time // gaps seen, first seen at (run goroutine only)

	received, stored, dups, quarantined, dropped, acks, replays, fails atomic.Uint64

	mu         sync.Mutex
	lastReplay map[string]time.Time

	done chan struct{}
}

type gapKey struct{ site, robot, session string }

// Start connects and starts the receiver; it runs until ctx is done or
// Close. Connection losses are handled inside (paho auto-reconnect, every
// subscription renewed on connect).
func Start(ctx context.Context, store Backend, opts Options) (*Receiver, error) {
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
	if opts.Share != "" {
		if err := telemetry.ValidateRobotID(opts.Share); err != nil {
			return nil, fmt.Errorf("fleet: share group: %w", err)
		}
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
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = 256 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Receiver{
		opts: opts, store: store, log: opts.Logger.With("component", "fleet"),
		queue: make(chan Item, 8192), lastReplay: map[string]time.Time{}, pending: map[gapKey]time.Time{},
		done: make(chan struct{}),
	}
	// Persistent session: the broker queues QoS 1 results while we are
	// away. A shared receiver uses a clean one (see Options.Share).
	po := telemetry.SessionOptions(telemetry.Session{
		Brokers: opts.Brokers, ClientID: opts.ClientID,
		Username: opts.Username, Password: opts.Password, TLS: opts.TLS,
		KeepAlive: opts.KeepAlive, MaxReconnectInterval: opts.MaxReconnectInterval,
	})
	if opts.Share != "" {
		po.SetCleanSession(true)
	}
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

// SitePrefix is the remote prefix a site's bridge puts before its topics.
const SitePrefix = "sites/"

// Filters returns the subscriptions of this receiver.
func (r *Receiver) Filters() []string {
	var f []string
	pre := ""
	if r.opts.Share != "" {
		pre = "$share/" + r.opts.Share + "/"
	}
	if r.opts.Sites {
		pre += SitePrefix + "+/"
	}
	for _, rb := range r.opts.Robots {
		base := pre + r.opts.TopicPrefix + "/" + rb
		f = append(f, base+"/result/#", base+"/event", base+"/image/#")
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

// siteOf splits "sites/<site>/<rest>" (Options.Sites) or returns the
// configured site.
func (r *Receiver) siteOf(topic string) (site string, ok bool) {
	if !r.opts.Sites {
		return r.opts.Site, true
	}
	rest, found := strings.CutPrefix(topic, SitePrefix)
	if !found {
		return "", false
	}
	site, _, found = strings.Cut(rest, "/")
	return site, found && site != ""
}

// Parse turns one received message into the Item a Backend commits
// (exported for the tests and the load generator). A message that is not
// a papscan envelope gives a KindInvalid item; a message without an
// ack key gives ok false (nothing to store).
func Parse(topic string, payload []byte, site string, at time.Time) (it Item, ok bool) {
	it = Item{Topic: topic, Site: site, ReceivedAt: at}
	invalid := func(reason string) (Item, bool) {
		it.Kind, it.Reject = KindInvalid, reason
		it.Raw = append(json.RawMessage(nil), payload[:min(len(payload), MaxInvalidBytes)]...)
		return it, true
	}
	if len(payload) > telemetry.MaxImageMessageBytes {
		return invalid(fmt.Sprintf("message is %d bytes, more than %d", len(payload), telemetry.MaxImageMessageBytes))
	}
	var e struct {
		telemetry.Envelope
		ImageID string `json:"image_id"`
	}
	if err := json.Unmarshal(payload, &e); err != nil {
		return invalid("not JSON: " + err.Error())
	}
	if e.Schema != telemetry.Schema {
		return invalid(fmt.Sprintf("field schema: %q, want %q", e.Schema, telemetry.Schema))
	}
	if err := telemetry.ValidateRobotID(e.RobotID); err != nil {
		return invalid("field robot_id: " + err.Error())
	}
	it.Kind, it.RobotID, it.SlideID, it.Event = e.Kind, e.RobotID, e.SlideID, e.Event
	it.OutboxSession, it.Seq, it.Floor = e.OutboxSession, e.OutboxSeq, e.OutboxFloor
	it.Raw = append(json.RawMessage(nil), payload...)
	switch e.Kind {
	case telemetry.KindResult:
		it.ID, it.ResultID = e.ResultID, e.ResultID
	case telemetry.KindEvent:
		it.ID = e.EventID
	case telemetry.KindImage:
		it.ID, it.ResultID = e.ImageID, e.ResultID
		m, err := telemetry.DecodeImage(payload)
		if err != nil {
			it.Reject = err.Error()
		} else {
			it.Image = &m
		}
	}
	if it.ID == "" || len(it.ID) > 128 {
		return it, false // not durable (no ack key): nothing to store
	}
	return it, true
}

// handle is paho's handler: parse and queue, never block.
func (r *Receiver) handle(_ paho.Client, m paho.Message) {
	r.received.Add(1)
	site, ok := r.siteOf(m.Topic())
	if !ok {
		r.dropped.Add(1)
		r.log.Warn("fleet: topic outside sites/<site>/", "topic", m.Topic())
		return
	}
	it, ok := Parse(m.Topic(), m.Payload(), site, time.Now().UTC())
	if !ok {
		r.log.Debug("fleet: message without result_id/event_id/image_id ignored", "topic", m.Topic(), "kind", it.Kind)
		return
	}
	if it.Reject != "" {
		r.log.Warn("fleet: message refused; quarantined", "topic", m.Topic(), "reason", it.Reject)
	}
	n := int64(len(it.Raw))
	if r.qbytes.Add(n) > r.opts.QueueBytes {
		r.qbytes.Add(-n)
		r.dropped.Add(1) // not acked: the robot sends it again
		return
	}
	select {
	case r.queue <- it:
	default:
		r.qbytes.Add(-n)
		r.dropped.Add(1)
	}
}

func (r *Receiver) run(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(r.opts.ReplayInterval / 2)
	defer tick.Stop()
	for {
		var batch []Item
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.checkGaps(ctx)
			continue
		case in := <-r.queue:
			batch = append(batch, in)
		}
		size := int64(len(batch[0].Raw))
	drain:
		for len(batch) < 512 && size < 32<<20 {
			select {
			case in := <-r.queue:
				batch = append(batch, in)
				size += int64(len(in.Raw))
			default:
				break drain
			}
		}
		r.qbytes.Add(-size)
		r.commit(ctx, batch)
	}
}

func (r *Receiver) commit(ctx context.Context, batch []Item) {
	res, err := r.store.Commit(ctx, batch)
	if err != nil {
		// Not stored, so not acked: the robots send them again.
		r.log.Error("fleet: commit failed; not acking", "messages", len(batch), "error", err)
		r.dropped.Add(uint64(len(batch)))
		r.fails.Add(1)
		return
	}
	r.stored.Add(uint64(len(res.Fresh)))
	r.dups.Add(uint64(res.Dups))
	if r.opts.OnStored != nil && len(res.Fresh) > 0 {
		r.opts.OnStored(res.Fresh)
	}
	type dest struct{ site, robot string }
	ack := map[dest][]string{}
	n := 0
	for _, it := range batch {
		if it.Reject != "" {
			r.quarantined.Add(1)
		}
		if it.Kind == KindInvalid || it.ID == "" {
			continue
		}
		d := dest{it.Site, it.RobotID}
		ack[d] = append(ack[d], it.ID)
		n++
	}
	for d, ids := range ack {
		for len(ids) > 0 {
			k := min(len(ids), 1000)
			r.ack(d.site, d.robot, ids[:k])
			ids = ids[k:]
		}
	}
	if r.opts.OnAcked != nil {
		r.opts.OnAcked(n)
	}
	now := time.Now()
	for _, g := range res.Gaps {
		k := gapKey{g.Site, g.RobotID, g.OutboxSession}
		if _, ok := r.pending[k]; !ok {
			r.pending[k] = now
		}
	}
}

// checkGaps asks for the gaps that lasted ReplayInterval.
func (r *Receiver) checkGaps(ctx context.Context) {
	now := time.Now()
	for k, first := range r.pending {
		if now.Sub(first) < r.opts.ReplayInterval {
			continue
		}
		g, ok, err := r.store.StreamGap(ctx, k.robot, k.session)
		if err != nil {
			continue
		}
		if !ok {
			delete(r.pending, k)
			continue
		}
		g.Site = k.site
		r.maybeReplay(g)
		r.pending[k] = now
	}
}

func (r *Receiver) prefix(site string) string {
	if r.opts.Sites {
		return SitePrefix + site + "/" + r.opts.TopicPrefix
	}
	return r.opts.TopicPrefix
}

func (r *Receiver) ack(site, robot string, ids []string) {
	a := telemetry.Ack{Schema: telemetry.Schema, Kind: telemetry.KindAck, RobotID: robot, Receiver: r.opts.Receiver, IDs: ids}
	if r.opts.SignAck != nil {
		r.opts.SignAck(&a)
	}
	b, _ := json.Marshal(a)
	// Not waited for: a lost ack only means the robot sends the entry
	// again and we ack it again.
	r.mc.Publish(telemetry.AckTopic(r.prefix(site), robot), 1, false, b)
	r.acks.Add(1)
}

func (r *Receiver) maybeReplay(g Gap) {
	r.mu.Lock()
	key := g.Site + "\x00" + g.RobotID + "\x00" + g.OutboxSession
	if time.Since(r.lastReplay[key]) < r.opts.ReplayInterval {
		r.mu.Unlock()
		return
	}
	r.lastReplay[key] = time.Now()
	r.mu.Unlock()
	r.log.Info("fleet: sequence gap; asking for a replay", "site", g.Site, "robot", g.RobotID, "outbox_session", g.OutboxSession, "from_seq", g.From, "to_seq", g.To)
	rp := telemetry.Replay{Schema: telemetry.Schema, Kind: telemetry.KindReplay, RobotID: g.RobotID, Receiver: r.opts.Receiver,
		OutboxSession: g.OutboxSession, FromSeq: g.From, ToSeq: g.To}
	if r.opts.SignReplay != nil {
		r.opts.SignReplay(&rp)
	}
	b, _ := json.Marshal(rp)
	r.mc.Publish(telemetry.ReplayTopic(r.prefix(g.Site), g.RobotID), 1, false, b)
	r.replays.Add(1)
}

// Stats returns the counters.
func (r *Receiver) Stats() Stats {
	return Stats{Received: r.received.Load(), Stored: r.stored.Load(), Duplicates: r.dups.Load(),
		Quarantined: r.quarantined.Load(), Dropped: r.dropped.Load(), AcksSent: r.acks.Load(),
		Replays: r.replays.Load(), CommitFails: r.fails.Load()}
}

// Close disconnects (after the run loop stopped, when ctx is done, or at
// once) and waits at most for ctx.
func (r *Receiver) Close() {
	r.mc.Disconnect(250)
}

// Done is closed when the run loop has stopped (its ctx ended).
func (r *Receiver) Done() <-chan struct{} { return r.done }
