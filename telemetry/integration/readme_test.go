package integration_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/telemetry/internal/mqtttest"
)

// readmeBlock returns the fenced block of README.md whose first line is
// first (without the fences).
func readmeBlock(t *testing.T, first string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "```\n"+first)
	if i < 0 {
		t.Fatalf("README has no block starting %q", first)
	}
	s = s[i+4:]
	j := strings.Index(s, "```")
	if j < 0 {
		t.Fatalf("README block %q is not closed", first)
	}
	return s[:j]
}

// TestReadmeBrokerConfig (finding 7, broker part): the README's Mosquitto
// configuration and ACL, as printed (only file paths and the port
// replaced), on a real Mosquitto: a client with another robot's
// certificate cannot take a robot's client ID (it kicked the robot off 8
// times with the earlier config), cannot ack for it, and an oversized
// publish is dropped by the broker (the earlier config accepted 256 MB).
func TestReadmeBrokerConfig(t *testing.T) {
	const wait = 10 * time.Second
	mqtttest.RequireMosquitto(t)
	dir := t.TempDir()
	lab := mqtttest.NewCA(t, dir, "lab")
	server := lab.Issue(t, dir, "broker", true)
	robotA := lab.Issue(t, dir, "robot-a", false)
	robotB := lab.Issue(t, dir, "robot-b", false)
	fleetC := lab.Issue(t, dir, "papscan-fleet", false)
	acl := filepath.Join(dir, "papscan.acl")
	if err := os.WriteFile(acl, []byte(readmeBlock(t, "# /etc/mosquitto/papscan.acl")), 0o600); err != nil {
		t.Fatal(err)
	}
	port := mqtttest.FreePort(t)
	conf := strings.NewReplacer(
		"/etc/mosquitto/ca.pem", lab.File,
		"/etc/mosquitto/broker.pem", server.CertFile,
		"/etc/mosquitto/broker-key.pem", server.KeyFile,
		"/etc/mosquitto/papscan.acl", acl,
		"/var/lib/mosquitto/", dir+"/",
		"listener 8883\n", fmt.Sprintf("listener %d 127.0.0.1\n", port),
	).Replace(readmeBlock(t, "# /etc/mosquitto/conf.d/papscan.conf"))
	m := mqtttest.StartMosquittoConf(t, conf, port)

	var lost atomic.Int32
	connect := func(cert mqtttest.Pair, clientID string, onLost func()) paho.Client {
		t.Helper()
		o := paho.NewClientOptions().AddBroker(m.URL).SetClientID(clientID).SetAutoReconnect(false).
			SetConnectTimeout(wait).SetTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: lab.Pool(), Certificates: []tls.Certificate{cert.TLS}})
		if onLost != nil {
			o.SetConnectionLostHandler(func(paho.Client, error) { onLost() })
		}
		c := paho.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("%s connect: %v", clientID, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	a := connect(robotA, "papscan-robot-a", func() { lost.Add(1) })
	acks := make(chan []byte, 10)
	if tok := a.Subscribe("papscan/robot-a/ack", 1, func(_ paho.Client, msg paho.Message) { acks <- msg.Payload() }); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	fleet := connect(fleetC, "papscan-fleet-rx", nil)
	events := make(chan []byte, 10)
	if tok := fleet.Subscribe("papscan/+/event", 1, func(_ paho.Client, msg paho.Message) { events <- msg.Payload() }); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	// Another robot's certificate with robot A's client ID.
	rogue := connect(robotB, "papscan-robot-a", nil)
	if tok := rogue.Publish("papscan/robot-a/ack", 1, false, "forged"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if tok := fleet.Publish("papscan/robot-a/ack", 1, false, "genuine"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case p := <-acks:
		if string(p) != "genuine" {
			t.Fatalf("robot A received %q on its ack topic: another robot may ack for it", p)
		}
	case <-time.After(wait):
		t.Fatal("robot A received no ack (kicked off by the client with its ID?)")
	}

	// Robot A is still connected: an oversized event is dropped by the
	// broker, the next one goes through.
	if tok := a.Publish("papscan/robot-a/event", 1, false, bytes.Repeat([]byte("x"), 2<<20)); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("robot A publish: %v (disconnected?)", tok.Error())
	}
	if tok := a.Publish("papscan/robot-a/event", 1, false, "small"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("robot A publish: %v", tok.Error())
	}
	select {
	case p := <-events:
		if string(p) != "small" {
			t.Fatalf("the fleet received a %d-byte event: message_size_limit not in force", len(p))
		}
	case <-time.After(wait):
		t.Fatal("the fleet received no event")
	}
	if n := lost.Load(); n != 0 || !a.IsConnectionOpen() {
		t.Fatalf("robot A lost its connection %d times", n)
	}
}
