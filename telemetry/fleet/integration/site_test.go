package integration_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/fleet/pgtest"
	"papscan/fleet/store"
	"papscan/telemetry"
	"papscan/telemetry/internal/mqtttest"
)

// SiteBridge is the bridge section of a site broker's mosquitto.conf
// (README, "Sites and a central broker"): results, images and events go
// up under sites/<site>/, acks, replay requests and commands come down.
// cleansession false: both sides queue QoS 1 messages while the uplink is
// down.
func SiteBridge(site, central string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "connection central-%s\naddress %s\ncleansession false\nclientid papscan-bridge-%s\n", site, central, site)
	b.WriteString("bridge_protocol_version mqttv311\ntry_private true\nrestart_timeout 1\nkeepalive_interval 5\n")
	for _, t := range []string{"papscan/+/result/# out", "papscan/+/image/# out", "papscan/+/event out",
		"papscan/+/ack in", "papscan/+/replay in", "papscan/+/cmd in"} {
		fmt.Fprintf(&b, "topic %s 1 \"\" sites/%s/\n", t, site)
	}
	return b.String()
}

// startSiteBroker runs a Mosquitto with extra configuration lines.
func startSiteBroker(t *testing.T, extra string) string {
	t.Helper()
	bin := mqtttest.RequireMosquitto(t)
	port := mqtttest.FreePort(t)
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nset_tcp_nodelay true\nmessage_size_limit %d\nlog_dest stderr\nlog_type error\nlog_type warning\n",
		port, telemetry.MaxImageMessageBytes)
	if os.Geteuid() == 0 {
		if u, err := user.Current(); err == nil {
			conf += "user " + u.Username + "\n"
		}
	}
	conf += extra
	path := filepath.Join(t.TempDir(), "site.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var log strings.Builder
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return "tcp://" + addr
		}
		select {
		case <-done:
			t.Fatalf("site mosquitto exited: %s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("site mosquitto did not start: %s", log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a server's start
	}
}

// TestSiteBridgeCut: robots talk to their site's Mosquitto, bridged to a
// central one where two receivers share the traffic into PostgreSQL. The
// uplink is cut (every connection dropped, new ones black-holed) while the
// robots keep producing, then restored: every result and image is stored
// exactly once and acked, and a command sent from the centre during the
// cut reaches the robot after it.
func TestSiteBridgeCut(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	mqtttest.RequireMosquitto(t)
	pg, err := pgtest.Start(context.Background())
	if err != nil {
		pgtest.Skip(t, err)
	}
	t.Cleanup(func() { pg.Close() })
	dsn, err := pg.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	central := mqtttest.StartMosquitto(t, nil)
	uplink := mqtttest.NewProxy(t, central.Addr())
	site := startSiteBroker(t, SiteBridge("lisbon", uplink.Addr()))
	for i := range 2 {
		startReceiver(t, dsn, central.URL, fmt.Sprintf("central-rx-%d", i), true)
	}
	const robots, perRobot = 10, 20
	sims := make([]*simRobot, robots)
	for i := range robots {
		sims[i] = newSimRobot(t, site, "papscan", fmt.Sprintf("lab-%02d", i), perRobot)
		if sims[i] == nil {
			t.FailNow()
		}
	}
	// A command for lab-00 from the centre, received at the site.
	cmds := make(chan string, 4)
	sub := paho.NewClient(telemetry.SessionOptions(telemetry.Session{Brokers: []string{site}, ClientID: "lab-00-cmd", KeepAlive: 10 * time.Second, MaxReconnectInterval: time.Second}))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(0)
	if tok := sub.Subscribe("papscan/lab-00/cmd", 1, func(_ paho.Client, m paho.Message) { cmds <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub := paho.NewClient(telemetry.SessionOptions(telemetry.Session{Brokers: []string{central.URL}, ClientID: "central-cmd", KeepAlive: 10 * time.Second, MaxReconnectInterval: time.Second}))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(0)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var acked atomic.Int64
	errs := make(chan error, robots)
	start := time.Now()
	for _, r := range sims {
		go func() { errs <- r.run(ctx, 2, 2*time.Second, &acked) }()
	}
	// Cut the uplink once a quarter of the results are in, for 3 s.
	total := int64(robots * perRobot)
	for acked.Load() < total/4 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond) // watching progress
	}
	uplink.Blackhole(true)
	uplink.Reset()
	cutAt := acked.Load()
	pub.Publish("sites/lisbon/papscan/lab-00/cmd", 1, false, `{"kind":"command","during":"cut"}`).WaitTimeout(5 * time.Second)
	time.Sleep(3 * time.Second) // the outage itself
	duringCut := acked.Load() - cutAt
	uplink.Blackhole(false)
	uplink.Reset() // drop the half-open connections the bridge made into the hole
	t.Logf("uplink cut at %d/%d results acked for 3 s (%d acked meanwhile), restored", cutAt, total, duringCut)
	for range robots {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d results + %d images through the bridge in %v", total, total, time.Since(start).Round(time.Millisecond))
	if duringCut > int64(robots*2) { // at most what was in flight before the cut
		t.Errorf("%d results acked while the uplink was cut", duringCut)
	}
	select {
	case c := <-cmds:
		if !strings.Contains(c, `"during":"cut"`) {
			t.Fatalf("command %s", c)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the command sent during the cut never reached the site")
	}
	c, err := st.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Results != int(total) || c.Images != int(total) || c.Quarantined != 0 {
		t.Fatalf("stored %+v, want %d results and %d images exactly once", c, total, total)
	}
	var sites []string
	rows, err := st.DB().Query(`SELECT DISTINCT site FROM records`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		sites = append(sites, s)
	}
	rows.Close()
	if len(sites) != 1 || sites[0] != "lisbon" {
		t.Fatalf("sites %v, want [lisbon]", sites)
	}
}
