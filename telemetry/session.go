package telemetry

import (
	"crypto/tls"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Session is what every papscan MQTT connection (the robot's Client, the
// fleet's receiver) shares: where to connect, as whom, and how fast to
// notice and recover from a lost connection.
type Session struct {
	Brokers              []string
	ClientID             string
	Username, Password   string
	TLS                  *tls.Config
	KeepAlive            time.Duration
	MaxReconnectInterval time.Duration
}

// SessionOptions returns paho options with the choices both ends of the
// fleet interface rely on; callers add timeouts, store, Will and handlers.
func SessionOptions(s Session) *paho.ClientOptions {
	po := paho.NewClientOptions()
	for _, b := range s.Brokers {
		po.AddBroker(b)
	}
	// Stable, unique client ID: the broker keys the persistent session on it.
	po.SetClientID(s.ClientID)
	po.SetUsername(s.Username)
	po.SetPassword(s.Password)
	if s.TLS != nil {
		po.SetTLSConfig(s.TLS)
	}
	// MQTT 3.1.1 exactly: without this paho silently falls back to 3.1 on a
	// refused CONNECT, doubling every failed attempt.
	po.SetProtocolVersion(4)
	// CleanSession=false: paho resends unacknowledged QoS 1 publishes after
	// a reconnect only with a persistent session (with true, Connect resets
	// its store and queued messages are silently lost), and the broker keeps
	// our subscriptions and queues QoS 1 messages for us while we are away.
	po.SetCleanSession(false)
	// OrderMatters=false: incoming messages are handed to handlers in their
	// own goroutines, so a slow handler cannot stall the client's network
	// loop (with true, a handler that blocks or publishes and waits
	// deadlocks the client: "pingresp not received"). Handlers only queue.
	po.SetOrderMatters(false)
	// AutoReconnect: after a connection loss paho reconnects by itself, with
	// exponential back-off capped at MaxReconnectInterval (paho default: 10
	// minutes, too slow for results waiting to go out).
	po.SetAutoReconnect(true)
	po.SetMaxReconnectInterval(s.MaxReconnectInterval)
	// ConnectRetry: the first Connect keeps retrying (every
	// connectRetryInterval) instead of failing on the first refusal, e.g.
	// while the network comes up at boot; the caller bounds the total wait.
	po.SetConnectRetry(true)
	po.SetConnectRetryInterval(connectRetryInterval)
	// KeepAlive: how fast the broker notices a dead peer (a robot's Will
	// after 1.5x) and the peer notices a dead broker (PINGRESP missing).
	po.SetKeepAlive(s.KeepAlive)
	return po
}
