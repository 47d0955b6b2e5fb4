package telemetry

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// Defaults applied by Dial to zero-valued Options fields.
const (
	DefaultKeepAlive            = 30 * time.Second
	DefaultConnectTimeout       = 10 * time.Second
	DefaultPublishTimeout       = 10 * time.Second
	DefaultMaxReconnectInterval = 30 * time.Second
	DefaultPingTimeout          = 10 * time.Second
)

// connectRetryInterval is the pause between attempts while Dial waits for
// the first connection (paho's ConnectRetryInterval, default 30 s, which
// would turn one refused attempt into a 30 s stall).
const connectRetryInterval = time.Second

// Options configures a Client. Only Brokers and RobotID are required.
type Options struct {
	// Brokers are broker URLs, tried in order: "tcp://host:1883",
	// "ssl://host:8883" (TLS), "ws://", "wss://". Required.
	Brokers []string

	// ClientID is the MQTT client identifier. Default "papscan-" + RobotID.
	// It must be stable across restarts (the broker keeps the session,
	// CleanSession=false, under this ID) and unique in the fleet: two
	// clients with the same ID knock each other off in an endless loop.
	ClientID string

	// RobotID names the robot in topics and envelopes. Required; one topic
	// level (no '/', '+', '#', not empty, valid UTF-8).
	RobotID string

	// TopicPrefix is the first topic level(s). Default DefaultTopicPrefix
	// ("papscan"). May contain '/' between levels ("site1/papscan").
	TopicPrefix string

	// Username and Password for broker authentication (empty = none).
	Username, Password string

	// TLS configures TLS for ssl:// and wss:// brokers. nil = paho's default
	// (system roots) for those schemes, and no TLS for tcp://.
	TLS *tls.Config

	// KeepAlive is the MQTT keep-alive: the broker publishes the Will when
	// it has heard nothing for 1.5 x KeepAlive. Default DefaultKeepAlive.
	KeepAlive time.Duration

	// PingTimeout: a connection whose PINGREQ gets no PINGRESP within
	// this is dropped and reconnected (a silent network blackhole is
	// detected after KeepAlive + PingTimeout). Default DefaultPingTimeout.
	PingTimeout time.Duration

	// ConnectTimeout bounds Dial (together with its ctx) and each single
	// connection attempt (TCP + TLS + CONNECT/CONNACK). Default
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration

	// PublishTimeout bounds the wait for a PUBACK in QoS 1 publishes
	// (together with the caller's ctx), and the hand-over of a message to
	// paho's writer. Default DefaultPublishTimeout.
	PublishTimeout time.Duration

	// MaxReconnectInterval caps the exponential back-off between reconnect
	// attempts after the connection is lost. paho's default is 10 minutes:
	// far too long for results waiting to go out. Default
	// DefaultMaxReconnectInterval.
	MaxReconnectInterval time.Duration

	// Logger receives connection events. Default slog.Default().
	Logger *slog.Logger

	// OnAck receives every valid fleet ack from "<prefix>/<robot>/ack";
	// OnReplay every valid replay request from "<prefix>/<robot>/replay".
	// Both topics are subscribed (QoS 1) on every connect, before
	// OnConnected runs, when the handler is set. Handlers are called from
	// paho's goroutines and MUST NOT block (hand the value to your own
	// goroutine; outbox.Sender does). Malformed messages are logged and
	// dropped.
	OnAck    func(Ack)
	OnReplay func(Replay)

	// FleetAuth verifies the fleet's signature on every ack and replay
	// request before OnAck or OnReplay sees it; a message it refuses is
	// logged and dropped (an ack that does not verify removes nothing, a
	// replay that does not verify resends nothing). It is required when
	// OnAck or OnReplay is set, unless UnsignedFleet says otherwise:
	// whoever can publish on the ack topic could otherwise make the robot
	// drop results the fleet never stored. *command.KeyRing implements
	// it (agent.mqtt.ack_keys).
	FleetAuth FleetVerifier
	// UnsignedFleet lets acks and replay requests through without a
	// signature check when FleetAuth is nil: for the simulator and
	// development only (configuration validation refuses it on a real
	// robot). Dial logs a warning saying so.
	UnsignedFleet bool

	// OnConnected runs after every (re)connect once the subscriptions
	// above are in place (acks can arrive). It MUST NOT block. The outbox
	// sender uses it to replay unacknowledged entries.
	OnConnected func()

	// Subscriptions are further fleet -> robot topics subscribed on every
	// connect (e.g. the signed command topic). Handlers MUST NOT block.
	Subscriptions []Subscription

	// Background makes Dial return as soon as the options are valid,
	// without waiting for the first connection: paho keeps trying the
	// brokers (every second) until one answers, then reconnects as usual.
	// The robot's agent uses it so that it starts, scans and stores
	// results into its outbox while the broker is down (Connected reports
	// false until then; QoS 1 publishes wait for their PUBACK as always).
	Background bool
}

// FleetVerifier authenticates the fleet's acks and replay requests; it
// returns the ID of the key that signed, or why it refuses.
type FleetVerifier interface {
	VerifyAck(Ack) (keyID string, err error)
	VerifyReplay(Replay) (keyID string, err error)
}

// Subscription is one inbound topic and its handler.
type Subscription struct {
	Topic   string
	QoS     byte
	Handler func(topic string, payload []byte) // must not block
}

// withDefaults validates o and returns a copy with defaults applied.
func (o Options) withDefaults() (Options, Topics, error) {
	if len(o.Brokers) == 0 {
		return o, Topics{}, errors.New("telemetry: Options.Brokers is empty")
	}
	for _, b := range o.Brokers {
		u, err := url.Parse(b)
		if err != nil {
			return o, Topics{}, fmt.Errorf("telemetry: invalid broker URL %q: %w", b, err)
		}
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "tcps", "ws", "wss":
		default:
			return o, Topics{}, fmt.Errorf("telemetry: broker URL %q: unsupported scheme %q (want tcp, ssl, ws or wss)", b, u.Scheme)
		}
		if u.Host == "" {
			return o, Topics{}, fmt.Errorf("telemetry: broker URL %q has no host", b)
		}
	}
	topics, err := NewTopics(o.TopicPrefix, o.RobotID)
	if err != nil {
		return o, Topics{}, err
	}
	o.TopicPrefix = topics.Prefix()
	if o.ClientID == "" {
		o.ClientID = "papscan-" + o.RobotID
	}
	if err := validateText("client ID", o.ClientID); err != nil {
		return o, Topics{}, err
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = DefaultPingTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.MaxReconnectInterval <= 0 {
		o.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if (o.OnAck != nil || o.OnReplay != nil) && o.FleetAuth == nil && !o.UnsignedFleet {
		return o, Topics{}, errors.New("telemetry: OnAck/OnReplay need Options.FleetAuth (the fleet's receiver keys, agent.mqtt.ack_keys) to verify acks and replay requests; only a simulator or development setup may set UnsignedFleet instead")
	}
	return o, topics, nil
}
