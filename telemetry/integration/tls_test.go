package integration_test

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/internal/mqtttest"
)

// TestTLSClientCertificates: Mosquitto requires a client certificate from
// the lab CA. The robot with its certificate connects and delivers; a
// robot that does not trust the broker's CA, one without a client
// certificate and one whose certificate another CA signed are refused.
func TestTLSClientCertificates(t *testing.T) {
	mqtttest.RequireMosquitto(t)
	dir := t.TempDir()
	lab := mqtttest.NewCA(t, dir, "lab")
	rogue := mqtttest.NewCA(t, dir, "rogue")
	server := lab.Issue(t, dir, "broker", true)
	robotCert := lab.Issue(t, dir, "robot-tls", false)
	fleetCert := lab.Issue(t, dir, "fleet", false)
	rogueCert := rogue.Issue(t, dir, "intruder", false)
	m := mqtttest.StartMosquitto(t, &mqtttest.TLSFiles{CAFile: lab.File, CertFile: server.CertFile, KeyFile: server.KeyFile, RequireClientCert: true})

	good := func(cert tls.Certificate) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: lab.Pool(), Certificates: []tls.Certificate{cert}}
	}
	f := startFleet(t, []string{m.URL}, good(fleetCert.TLS))
	r := startRobot(t, t.TempDir(), []string{m.URL}, "robot-tls", func(o *telemetry.Options) { o.TLS = good(robotCert.TLS) })
	id := telemetry.NewID()
	if _, err := r.ob.PutResult("S-TLS", id, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if missing := f.waitFor(map[string]string{id: "S-TLS"}, 20*time.Second); len(missing) > 0 {
		t.Fatal("result over TLS never arrived")
	}

	for _, c := range []struct {
		name string
		tc   *tls.Config
		why  []string // one of these in the error
	}{
		{"wrong CA (broker not trusted)", &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: rogue.Pool(), Certificates: []tls.Certificate{robotCert.TLS}},
			[]string{"unknown authority"}},
		{"no client certificate", &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: lab.Pool()},
			[]string{"certificate required", "reset by peer", "bad certificate"}},
		{"client certificate from another CA", &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: lab.Pool(), Certificates: []tls.Certificate{rogueCert.TLS}},
			[]string{"unknown certificate authority", "reset by peer", "bad certificate", "EOF"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := robotOptions([]string{m.URL}, "robot-bad")
			o.TLS = c.tc
			o.ConnectTimeout = 1500 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			tm, err := telemetry.Dial(ctx, o)
			if err == nil {
				tm.Close(context.Background())
				t.Fatal("connected; want refused")
			}
			if !errors.Is(err, telemetry.ErrUnreachable) {
				t.Fatalf("error %v, want ErrUnreachable", err)
			}
			if !slices.ContainsFunc(c.why, func(w string) bool { return strings.Contains(err.Error(), w) }) {
				t.Fatalf("refused, but not for a TLS reason %q: %v", c.why, err)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestBrokerFailover: with two broker URLs the robot uses the first that
// answers and moves to the other when its broker dies; results keep
// flowing (the fleet listens on both).
func TestBrokerFailover(t *testing.T) {
	a := mqtttest.StartMosquitto(t, nil)
	b := mqtttest.StartMosquitto(t, nil)
	fa := startFleet(t, []string{a.URL}, nil)
	fb := startFleet(t, []string{b.URL}, nil)
	r := startRobot(t, t.TempDir(), []string{a.URL, b.URL}, "robot-fo", nil)
	id1 := telemetry.NewID()
	if _, err := r.ob.PutResult("S1", id1, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if missing := fa.waitFor(map[string]string{id1: "S1"}, 20*time.Second); len(missing) > 0 {
		t.Fatal("first result did not reach broker A's fleet")
	}
	a.Kill()
	t0 := time.Now()
	id2 := telemetry.NewID()
	if _, err := r.ob.PutResult("S2", id2, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if missing := fb.waitFor(map[string]string{id2: "S2"}, 20*time.Second); len(missing) > 0 {
		t.Fatal("after broker A died the result never reached broker B")
	}
	t.Logf("FIGURES failover: result delivered through broker B %v after broker A was killed", time.Since(t0).Round(time.Millisecond))
}

// readmeACL is the ACL file shown in README.md (keep them in sync).
const readmeACL = `pattern write papscan/%u/state
pattern write papscan/%u/result/#
pattern write papscan/%u/event
pattern write papscan/%u/progress
pattern write papscan/%u/health
pattern read  papscan/%u/ack
pattern read  papscan/%u/replay
pattern read  papscan/%u/cmd

user papscan-fleet
topic read  papscan/+/state
topic read  papscan/+/result/#
topic read  papscan/+/event
topic read  papscan/+/progress
topic read  papscan/+/health
topic write papscan/+/ack
topic write papscan/+/replay
topic write papscan/+/cmd
`

// TestPerRobotACL runs the README's Mosquitto TLS + ACL setup: robot-07
// delivers; robot-08 (a valid lab certificate) publishing as robot-07 gets
// a PUBACK (MQTT 3.1.1) but nothing reaches the fleet.
func TestPerRobotACL(t *testing.T) {
	mqtttest.RequireMosquitto(t)
	dir := t.TempDir()
	lab := mqtttest.NewCA(t, dir, "lab")
	server := lab.Issue(t, dir, "broker", true)
	r07 := lab.Issue(t, dir, "robot-07", false)
	r08 := lab.Issue(t, dir, "robot-08", false)
	fl := lab.Issue(t, dir, "papscan-fleet", false)
	acl := filepath.Join(dir, "papscan.acl")
	if err := os.WriteFile(acl, []byte(readmeACL), 0o600); err != nil {
		t.Fatal(err)
	}
	m := mqtttest.StartMosquitto(t, &mqtttest.TLSFiles{CAFile: lab.File, CertFile: server.CertFile, KeyFile: server.KeyFile,
		RequireClientCert: true, Extra: "use_identity_as_username true\nacl_file " + acl + "\n"})
	tc := func(p mqtttest.Pair) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: lab.Pool(), Certificates: []tls.Certificate{p.TLS}}
	}
	f := startFleet(t, []string{m.URL}, tc(fl))
	good := startRobot(t, t.TempDir(), []string{m.URL}, "robot-07", func(o *telemetry.Options) { o.TLS = tc(r07) })
	id := telemetry.NewID()
	if _, err := good.ob.PutResult("S-07", id, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if missing := f.waitFor(map[string]string{id: "S-07"}, 20*time.Second); len(missing) > 0 {
		t.Fatal("robot-07's own result never arrived")
	}
	if !waitDepth0(good.ob, 10*time.Second) {
		t.Fatal("robot-07 never got the fleet's ack")
	}

	// robot-08 pretends to be robot-07.
	o := robotOptions([]string{m.URL}, "robot-07")
	o.ClientID, o.TLS = "impostor", tc(r08)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	imp, err := telemetry.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close(context.Background())
	fake := telemetry.NewID()
	err = imp.PublishDelivery(ctx, telemetry.Delivery{Kind: telemetry.KindResult, ID: fake, SlideID: "S-FAKE", Body: []byte(`{}`), OutboxSeq: 99})
	t.Logf("impostor publish: PUBACK error = %v (a PUBACK proves nothing)", err)
	if missing := f.waitFor(map[string]string{fake: "S-FAKE"}, 2*time.Second); len(missing) == 0 {
		t.Fatal("the impostor's result reached the fleet: the ACL let it through")
	}
}
