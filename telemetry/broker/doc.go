// Package broker runs an embedded MQTT broker (mochi-mqtt/server v2) for
// papscan's out-of-the-box simulation and fast tests. It is not the fleet
// broker: production and fault/TLS tests use a real Mosquitto.
//
//	b, err := broker.Start(ctx, "127.0.0.1:0", logger)
//	...
//	opts.Brokers = []string{b.URL()} // "tcp://127.0.0.1:<port>"
//	defer b.Close()
//
// Properties:
//   - Loopback only: Start refuses a non-loopback address, and an auth hook
//     accepts only clients whose remote address is loopback. Those get full
//     access (any topic, publish and subscribe); there is no authentication.
//   - Start binds the listener itself, so Addr/URL report the real port
//     even for ":0".
//   - MQTT 3.1.1 and 5, QoS 0-2, retained messages, Wills and persistent
//     sessions, all in memory: a restart forgets them.
//   - mochi's logs are routed to the given logger at Warn and above (nil
//     logger = silent); routine client disconnects are not logged.
//   - Close (or ctx done) stops accepting, drops all clients (their Wills
//     are published, as for any connection loss) and waits for the
//     per-connection goroutines before closing mochi (avoids a WaitGroup
//     race inside mochi's own TCP listener).
//   - Server exposes the mochi server for tests that add hooks (for example
//     to capture CONNECT packets) or disconnect clients.
//
// Note: mochi may deliver a retained message twice to a subscription made
// just before the message was published (retained copies are sent after
// the SUBACK, concurrently with live delivery). QoS 1 is at-least-once
// anyway; receivers deduplicate.
package broker
