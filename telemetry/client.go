package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Errors returned by Client. Errors are wrapped: test with errors.Is.
var (
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("telemetry: client closed")
	// ErrUnreachable: Dial could not connect to any broker in time.
	ErrUnreachable = errors.New("telemetry: broker unreachable")
	// ErrNotAcked: a QoS 1 publish was not confirmed by a PUBACK (not
	// connected, connection lost, timeout or ctx done). The message may
	// still be delivered later (paho resends it after a reconnect), so the
	// caller must keep the data and retry with the same result ID; the
	// receiver deduplicates.
	ErrNotAcked = errors.New("telemetry: publish not acknowledged")
	// ErrInvalidPayload: a result body is not valid JSON, or an event body
	// cannot be marshalled.
	ErrInvalidPayload = errors.New("telemetry: invalid payload")
)

// progressQueue is how many progress messages may wait for the progress
// goroutine; when full the oldest waiting one is dropped.
const progressQueue = 16

// Client publishes one robot's telemetry to an MQTT broker. It is safe for
// concurrent use. Create it with Dial and release it with Close.
type Client struct {
	opts    Options
	topics  Topics
	log     *slog.Logger
	mc      paho.Client
	store   *ackStore
	session string
	seq     atomic.Uint64
	// refused counts acks and replay requests FleetAuth refused.
	refused atomic.Uint64

	// life is cancelled by Close; it aborts birth publishes in flight.
	life     context.Context
	stopLife context.CancelFunc

	mu        sync.Mutex
	closing   bool
	births    sync.WaitGroup // birth goroutines started by onConnect
	lastState *stateMsg      // last state set by PublishState, restored after a reconnect

	inbound []Subscription // subscribed on every connect

	lastErrMu sync.Mutex
	lastErr   error // last connection failure, for Dial's error message

	progress     chan progressMsg
	progressDone chan struct{} // closed when the progress goroutine has exited
	closeOnce    sync.Once
	closeErr     error
}

type stateMsg struct {
	state  string
	fields map[string]any
}

type progressMsg struct {
	slideID string
	payload []byte
}

// Dial validates opts, configures paho and connects to the first reachable
// broker. It waits until the CONNACK arrives, ctx is done or
// opts.ConnectTimeout elapses, whichever is first; on failure it stops all
// retries and returns an error wrapping ErrUnreachable that names the broker
// URLs and the last connection error.
//
// Once Dial has returned a Client, connection loss is handled inside it:
// paho reconnects with back-off (up to opts.MaxReconnectInterval) and the
// birth state is published again after every (re)connect.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	opts, topics, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		opts:         opts,
		topics:       topics,
		session:      NewID(),
		store:        newAckStore(),
		progress:     make(chan progressMsg, progressQueue),
		progressDone: make(chan struct{}),
	}
	c.log = opts.Logger.With("component", "telemetry", "robot_id", opts.RobotID, "client_id", opts.ClientID)
	if opts.FleetAuth == nil && opts.UnsignedFleet && (opts.OnAck != nil || opts.OnReplay != nil) {
		c.log.Warn("INSECURE: fleet acks and replay requests are NOT signature-checked (simulator/development only): anyone who can publish on the ack topic can make this robot drop results")
	}
	c.inbound = c.inboundSubscriptions()
	c.life, c.stopLife = context.WithCancel(context.Background())

	will, err := json.Marshal(Envelope{
		Schema:    Schema,
		Kind:      KindState,
		RobotID:   opts.RobotID,
		SessionID: c.session,
		State:     StateOffline,
		Body:      json.RawMessage(`{"reason":"connection lost"}`),
	})
	if err != nil {
		return nil, err
	}

	po := SessionOptions(Session{
		Brokers: opts.Brokers, ClientID: opts.ClientID,
		Username: opts.Username, Password: opts.Password, TLS: opts.TLS,
		KeepAlive: opts.KeepAlive, MaxReconnectInterval: opts.MaxReconnectInterval,
	})
	po.SetPingTimeout(opts.PingTimeout)
	// In-memory store (paho's MemoryStore) wrapped to observe real PUBACKs;
	// see ackStore. Not durable: a restart loses what it holds.
	po.SetStore(c.store)
	// Per-attempt bound on TCP/TLS dial + CONNECT/CONNACK.
	po.SetConnectTimeout(opts.ConnectTimeout)
	// Bounds handing a message to paho's writer and the socket write
	// (0 would mean 30 s inside Publish and no write deadline at all).
	po.SetWriteTimeout(opts.PublishTimeout)
	// Last Will: the broker publishes "offline", retained, QoS 1, on the
	// state topic if we vanish without a clean DISCONNECT. Retained so a
	// dashboard that subscribes later still sees the robot is gone.
	po.SetBinaryWill(topics.State(), will, 1, true)
	// OnConnect runs after every (re)connect; it must not block, so the
	// birth publish (which waits for its PUBACK) runs in its own goroutine.
	po.SetOnConnectHandler(c.onConnect)
	po.SetConnectionLostHandler(func(_ paho.Client, err error) {
		c.log.Warn("mqtt connection lost; reconnecting", "error", err)
	})
	po.SetReconnectingHandler(func(_ paho.Client, _ *paho.ClientOptions) {
		c.log.Debug("mqtt reconnecting")
	})
	// Remember why attempts fail so Dial can say it; runs synchronously in
	// paho's connect goroutine, so keep it short.
	po.SetConnectionNotificationHandler(func(_ paho.Client, n paho.ConnectionNotification) {
		switch n := n.(type) {
		case paho.ConnectionNotificationBrokerFailed:
			c.setLastErr(fmt.Errorf("%s: %w", n.Broker.Redacted(), n.Reason))
		case paho.ConnectionNotificationFailed:
			if c.getLastErr() == nil {
				c.setLastErr(n.Reason)
			}
		}
	})
	// Inbound routes, registered before connecting so that messages the
	// broker queued for our persistent session find their handler.
	// OrderMatters=false runs each in its own goroutine; they never block.
	c.mc = paho.NewClient(po)
	for _, sb := range c.inbound {
		h := sb.Handler
		c.mc.AddRoute(sb.Topic, func(_ paho.Client, m paho.Message) { h(m.Topic(), m.Payload()) })
	}

	tok := c.mc.Connect()
	if opts.Background {
		go c.runProgress()
		c.log.Info("mqtt connecting in the background", "brokers", opts.Brokers)
		return c, nil
	}
	timeout := time.NewTimer(opts.ConnectTimeout)
	defer timeout.Stop()
	var why error
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			why = err
		}
	case <-ctx.Done():
		why = ctx.Err()
	case <-timeout.C:
		why = fmt.Errorf("no connection within %v", opts.ConnectTimeout)
	}
	if why == nil {
		go c.runProgress()
		c.log.Info("mqtt connected", "brokers", opts.Brokers)
		return c, nil
	}
	// Stop paho's retry loop (it would otherwise keep the connection
	// attempts going in the background). Disconnect takes its quiesce time
	// even when nothing is connected, so it runs in the background and
	// Dial returns at its deadline.
	c.stopLife()
	go c.mc.Disconnect(100)
	close(c.progressDone)
	if last := c.getLastErr(); last != nil {
		return nil, fmt.Errorf("%w: cannot connect to MQTT broker(s) %v: %w (last attempt: %w)", ErrUnreachable, opts.Brokers, why, last)
	}
	return nil, fmt.Errorf("%w: cannot connect to MQTT broker(s) %v: %w", ErrUnreachable, opts.Brokers, why)
}

func (c *Client) setLastErr(err error) {
	c.lastErrMu.Lock()
	c.lastErr = err
	c.lastErrMu.Unlock()
}

func (c *Client) getLastErr() error {
	c.lastErrMu.Lock()
	defer c.lastErrMu.Unlock()
	return c.lastErr
}

// RefusedFleetMessages counts acks and replay requests whose signature
// Options.FleetAuth refused since Dial.
func (c *Client) RefusedFleetMessages() uint64 { return c.refused.Load() }

// Topics returns the topic builder of this client's robot.
func (c *Client) Topics() Topics { return c.topics }

// SessionID returns the random ID of this Client instance (envelope
// session_id); sequence numbers restart at 1 with each session.
func (c *Client) SessionID() string { return c.session }

// Connected reports whether the network connection to the broker is up
// right now (not while reconnecting). It may change at any moment.
func (c *Client) Connected() bool { return c.mc.IsConnectionOpen() }

// onConnect is paho's OnConnect handler: hand the birth to a goroutine.
func (c *Client) onConnect(paho.Client) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	last := c.lastState
	c.births.Add(1)
	c.mu.Unlock()

	go func() {
		defer c.births.Done()
		// Subscribe on every connect: a broker restarted without
		// persistence has forgotten our session and its subscriptions.
		// Acks must be flowing before the outbox replays.
		c.subscribe()
		if c.opts.OnConnected != nil {
			c.opts.OnConnected()
		}
		c.log.Info("mqtt connected; publishing birth", "topic", c.topics.State())
		ctx := c.life
		err := c.publishState(ctx, StateOnline, map[string]any{"client_id": c.opts.ClientID})
		if err == nil && last != nil && last.state != StateOnline && last.state != StateOffline {
			// Restore the application's state (e.g. "fault") so a brief
			// disconnect does not hide it behind "online".
			err = c.publishState(ctx, last.state, last.fields)
		}
		if err != nil && ctx.Err() == nil {
			c.log.Warn("birth state not published", "error", err)
		}
	}()
}

// subscribe (re)subscribes the inbound topics and waits for the SUBACK,
// bounded by PublishTimeout.
func (c *Client) subscribe() {
	subs := map[string]byte{}
	for _, sb := range c.inbound {
		subs[sb.Topic] = sb.QoS
	}
	if len(subs) == 0 {
		return
	}
	tok := c.mc.SubscribeMultiple(subs, nil)
	if !tok.WaitTimeout(c.opts.PublishTimeout) {
		c.log.Warn("mqtt subscribe: no SUBACK in time", "topics", len(subs))
		return
	}
	if err := tok.Error(); err != nil {
		c.log.Warn("mqtt subscribe failed", "error", err)
	}
}

// inboundSubscriptions lists the topics the client subscribes on connect,
// each with a handler that never blocks.
func (c *Client) inboundSubscriptions() []Subscription {
	var subs []Subscription
	if h := c.opts.OnAck; h != nil {
		subs = append(subs, Subscription{Topic: c.topics.Ack(), QoS: 1, Handler: func(topic string, p []byte) {
			a, err := DecodeAck(c.opts.RobotID, p)
			if err != nil {
				c.log.Warn("ignoring inbound message", "topic", topic, "error", err)
				return
			}
			if v := c.opts.FleetAuth; v != nil {
				if _, err := v.VerifyAck(a); err != nil {
					c.refused.Add(1)
					c.log.Warn("refusing a fleet ack not signed by a trusted receiver key; its results stay in the outbox",
						"topic", topic, "receiver", a.Receiver, "key_id", a.KeyID, "ids", len(a.IDs), "error", err)
					return
				}
			}
			h(a)
		}})
	}
	if h := c.opts.OnReplay; h != nil {
		subs = append(subs, Subscription{Topic: c.topics.Replay(), QoS: 1, Handler: func(topic string, p []byte) {
			r, err := DecodeReplay(c.opts.RobotID, p)
			if err != nil {
				c.log.Warn("ignoring inbound message", "topic", topic, "error", err)
				return
			}
			if v := c.opts.FleetAuth; v != nil {
				if _, err := v.VerifyReplay(r); err != nil {
					c.refused.Add(1)
					c.log.Warn("refusing a replay request not signed by a trusted receiver key",
						"topic", topic, "receiver", r.Receiver, "key_id", r.KeyID, "error", err)
					return
				}
			}
			h(r)
		}})
	}
	return append(subs, c.opts.Subscriptions...)
}

// PublishResult publishes one slide's result envelope (kind "result") to
// "<prefix>/<robot>/result/<slideID>" at QoS 1, not retained, and waits for
// the broker's PUBACK, bounded by ctx and Options.PublishTimeout.
//
// payload is the result body as JSON (counts, verdict, model version,
// timings: produced by the scan code); it is embedded as "body". resultID
// identifies the result (NewID()); keep it across retries so the receiver
// can deduplicate.
//
// A nil error means the broker acknowledged the message; it does NOT prove
// the fleet stored it (see doc.go). Any error means delivery is unconfirmed:
// the caller keeps the result and retries later.
func (c *Client) PublishResult(ctx context.Context, slideID, resultID string, payload []byte) error {
	topic, err := c.topics.Result(slideID)
	if err != nil {
		return err
	}
	if err := validateText("result ID", resultID); err != nil {
		return err
	}
	if !json.Valid(payload) {
		return fmt.Errorf("%w: result %s for slide %q: body is not valid JSON", ErrInvalidPayload, resultID, slideID)
	}
	if c.isClosing() {
		return ErrClosed
	}
	b, err := c.envelope(Envelope{Kind: KindResult, SlideID: slideID, ResultID: resultID, Body: payload})
	if err != nil {
		return err
	}
	if err := c.publishWait(ctx, topic, false, b); err != nil {
		return fmt.Errorf("result %s for slide %q: %w", resultID, slideID, err)
	}
	return nil
}

// PublishEvent publishes an event envelope (kind "event", "event": kind) to
// "<prefix>/<robot>/event" at QoS 1 and waits for the PUBACK. payload is
// marshalled to JSON as the body (nil = no body).
func (c *Client) PublishEvent(ctx context.Context, kind string, payload any) error {
	if err := validateText("event kind", kind); err != nil {
		return err
	}
	var body json.RawMessage
	if payload != nil {
		var err error
		if body, err = json.Marshal(payload); err != nil {
			return fmt.Errorf("%w: event %q: %w", ErrInvalidPayload, kind, err)
		}
	}
	if c.isClosing() {
		return ErrClosed
	}
	b, err := c.envelope(Envelope{Kind: KindEvent, Event: kind, Body: body})
	if err != nil {
		return err
	}
	if err := c.publishWait(ctx, c.topics.Event(), false, b); err != nil {
		return fmt.Errorf("event %q: %w", kind, err)
	}
	return nil
}

// PublishReply publishes an encoded command reply (package
// telemetry/command builds it) to "<prefix>/<robot>/cmd/reply" at QoS 1,
// not retained, and waits for the broker's PUBACK, bounded by ctx and
// PublishTimeout. The reply is sent as is (it is not an envelope).
func (c *Client) PublishReply(ctx context.Context, reply []byte) error {
	if len(reply) == 0 || !json.Valid(reply) {
		return fmt.Errorf("%w: command reply is not JSON", ErrInvalidPayload)
	}
	if c.isClosing() {
		return ErrClosed
	}
	// A fresh slice: the ack store matches the PUBACK on this very payload.
	b := append([]byte(nil), reply...)
	if err := c.publishWait(ctx, c.topics.CmdReply(), false, b); err != nil {
		return fmt.Errorf("command reply: %w", err)
	}
	return nil
}

// PublishState publishes a state envelope ("state": state, "body": fields)
// to "<prefix>/<robot>/state", retained, QoS 1, and waits for the PUBACK.
// A state other than "online"/"offline" is remembered and published again
// after the birth on every reconnect.
func (c *Client) PublishState(ctx context.Context, state string, fields map[string]any) error {
	if err := validateText("state", state); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	c.lastState = &stateMsg{state: state, fields: fields}
	c.mu.Unlock()
	return c.publishState(ctx, state, fields)
}

func (c *Client) publishState(ctx context.Context, state string, fields map[string]any) error {
	var body json.RawMessage
	if len(fields) > 0 {
		var err error
		if body, err = json.Marshal(fields); err != nil {
			return fmt.Errorf("%w: state %q: %w", ErrInvalidPayload, state, err)
		}
	}
	b, err := c.envelope(Envelope{Kind: KindState, State: state, Body: body})
	if err != nil {
		return err
	}
	if err := c.publishWait(ctx, c.topics.State(), true, b); err != nil {
		return fmt.Errorf("state %q: %w", state, err)
	}
	return nil
}

// PublishProgress queues a progress message (kind "progress", body
// {"done":done,"total":total}) for "<prefix>/<robot>/progress" at QoS 0. It
// never blocks: messages are dropped (oldest first) when the queue is full
// and silently when the connection is down. It returns an error only for
// invalid arguments or a closed client.
func (c *Client) PublishProgress(slideID string, done, total int) error {
	if err := ValidateSlideID(slideID); err != nil {
		return err
	}
	if total < 0 || done < 0 || done > total {
		return fmt.Errorf("%w: progress %d/%d for slide %q", ErrInvalidPayload, done, total, slideID)
	}
	if c.isClosing() {
		return ErrClosed
	}
	body, _ := json.Marshal(ProgressBody{Done: done, Total: total})
	b, err := c.envelope(Envelope{Kind: KindProgress, SlideID: slideID, Body: body})
	if err != nil {
		return err
	}
	m := progressMsg{slideID: slideID, payload: b}
	for range 2 {
		select {
		case c.progress <- m:
			return nil
		default:
		}
		select { // full: drop the oldest waiting message and try once more
		case <-c.progress:
		default:
		}
	}
	return nil
}

// runProgress publishes queued progress messages until Close.
func (c *Client) runProgress() {
	defer close(c.progressDone)
	for {
		select {
		case <-c.life.Done():
			return
		case m := <-c.progress:
			// QoS 0 published while reconnecting is dropped by paho with a
			// token reporting success; skip it knowingly instead.
			if !c.mc.IsConnectionOpen() {
				c.log.Debug("progress dropped: not connected", "slide_id", m.slideID)
				continue
			}
			tok := c.mc.Publish(c.topics.Progress(), 0, false, m.payload)
			if !tok.WaitTimeout(c.opts.PublishTimeout) || tok.Error() != nil {
				c.log.Debug("progress dropped", "slide_id", m.slideID, "error", tok.Error())
			}
		}
	}
}

func (c *Client) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// envelope fills the common fields and marshals e.
func (c *Client) envelope(e Envelope) ([]byte, error) {
	e.Schema = Schema
	e.MessageID = NewID()
	e.RobotID = c.opts.RobotID
	e.SessionID = c.session
	e.Seq = c.seq.Add(1)
	e.SentAt = time.Now().UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPayload, err)
	}
	return b, nil
}

// publishWait publishes at QoS 1 and waits until the broker's PUBACK for
// this very payload has been read, bounded by ctx and PublishTimeout. Every
// failure wraps ErrNotAcked. payload must be a fresh slice (see ackStore).
func (c *Client) publishWait(ctx context.Context, topic string, retained bool, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w on %s: %w", ErrNotAcked, topic, err)
	}
	acked, done := c.store.expect(payload)
	defer done()
	timer := time.NewTimer(c.opts.PublishTimeout)
	defer timer.Stop()
	// paho's Publish may block up to WriteTimeout (= PublishTimeout) handing
	// the packet to its writer; it returns at once when disconnected.
	tok := c.mc.Publish(topic, 1, retained, payload)
	tokDone := tok.Done()
	for {
		select {
		case <-acked:
			return nil
		case <-tokDone:
			if err := tok.Error(); err != nil {
				return fmt.Errorf("%w on %s: %w", ErrNotAcked, topic, err)
			}
			// Completed without error: normally the PUBACK (already seen
			// by ackStore, so acked is ready); after a reconnect paho may
			// complete the token early, so keep waiting for the PUBACK.
			tokDone = nil
		case <-ctx.Done():
			return fmt.Errorf("%w on %s: %w", ErrNotAcked, topic, ctx.Err())
		case <-timer.C:
			return fmt.Errorf("%w on %s: no PUBACK within %v (connected=%v)", ErrNotAcked, topic, c.opts.PublishTimeout, c.Connected())
		}
	}
}

// Close publishes the retained "offline" state (body {"reason":"shutdown"}),
// then disconnects cleanly (so the broker discards the Will). It waits at
// most until ctx is done (and PublishTimeout for the offline PUBACK). Close
// is idempotent; later calls return the first call's result. After Close,
// publishes return ErrClosed or ErrNotAcked.
func (c *Client) Close(ctx context.Context) error {
	c.closeOnce.Do(func() { c.closeErr = c.close(ctx) })
	return c.closeErr
}

func (c *Client) close(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.stopLife() // stops the progress goroutine and aborts birth waits

	// Wait for birth goroutines so a late "online" cannot follow "offline".
	done := make(chan struct{})
	go func() { c.births.Wait(); <-c.progressDone; close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}

	var err error
	if c.mc.IsConnectionOpen() {
		body, _ := json.Marshal(map[string]string{"reason": "shutdown"})
		b, e := c.envelope(Envelope{Kind: KindState, State: StateOffline, Body: body})
		if e == nil {
			e = c.publishWait(ctx, c.topics.State(), true, b)
		}
		if e != nil {
			err = fmt.Errorf("telemetry: close: offline state: %w", e)
		}
	}
	// Quiesce: time allowed for the DISCONNECT packet to be written.
	quiesce := time.Second
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < quiesce {
			quiesce = max(left, 10*time.Millisecond)
		}
	}
	c.mc.Disconnect(uint(quiesce / time.Millisecond))
	c.log.Info("mqtt disconnected")
	return err
}
