// Command papscan-fleet is the fleet side's tool (it runs at the lab, not
// on the robot): the reference receiver stores every result and event the
// robots publish, acknowledges each after its own commit, asks robots to
// replay when their sequence numbers show a gap, and lists what it holds;
// keygen and send command robots with signed commands (docs/commands.md).
//
//	papscan-fleet run    --broker tcp://127.0.0.1:1883 [--broker ...] --db fleet.db [--robot +] [--ack-key receiver.pem]
//	papscan-fleet list   --db fleet.db [--robot R] [--json]
//	papscan-fleet keygen --id fleet-2026 --out fleet-2026.pem
//	papscan-fleet send   --broker URL --robot ID --fleet-key fleet-2026.pem [--args JSON] TYPE
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/command"
	"papscan/telemetry/fleet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: papscan-fleet run|list|keygen|send [flags] (papscan-fleet send -h)")
		return 2
	}
	switch args[0] {
	case "run":
		return runReceiver(ctx, args[1:], stdout, stderr)
	case "list":
		return runList(args[1:], stdout, stderr)
	case "keygen":
		return runKeygen(args[1:], stdout, stderr)
	case "send":
		return runSend(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "papscan-fleet: unknown command %q (want run, list, keygen or send)\n", args[0])
	return 2
}

func runReceiver(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var brokers, robots list
	fs.Var(&brokers, "broker", "broker URL, repeat for failover (tcp://, ssl://, ws://, wss://)")
	fs.Var(&robots, "robot", "robot ID to follow, repeat; default + (every robot)")
	db := fs.String("db", "fleet.db", "store file (bbolt)")
	prefix := fs.String("prefix", "papscan", "topic prefix")
	clientID := fs.String("client-id", "papscan-fleet", "MQTT client ID (stable, unique)")
	user := fs.String("username", "", "MQTT user name")
	pwFile := fs.String("password-file", "", "file holding the MQTT password")
	ca := fs.String("ca", "", "CA certificate (PEM) of the broker")
	cert := fs.String("cert", "", "client certificate (PEM)")
	key := fs.String("key", "", "client key (PEM)")
	keepalive := fs.Duration("keepalive", 30*time.Second, "MQTT keepalive")
	replay := fs.Duration("replay-interval", 5*time.Second, "at most one replay request per robot this often")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	ackKey := fs.String("ack-key", "", "receiver signing key (PEM from keygen): every ack and replay request is signed with it (robots verify them with agent.mqtt.ack_keys)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(brokers) == 0 {
		fmt.Fprintln(stderr, "papscan-fleet run: --broker is required")
		return 2
	}
	var signAck func(*telemetry.Ack)
	var signReplay func(*telemetry.Replay)
	if *ackKey != "" {
		sk, err := command.ReadSigningKeyFile(*ackKey)
		if err != nil {
			fmt.Fprintf(stderr, "papscan-fleet run: --ack-key: %v\n", err)
			return 2
		}
		signAck = func(a *telemetry.Ack) { command.SignAck(sk, a) }
		signReplay = func(r *telemetry.Replay) { command.SignReplay(sk, r) }
	}
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(*level))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	opts := fleet.Options{Brokers: brokers, Robots: robots, TopicPrefix: *prefix, ClientID: *clientID,
		Username: *user, KeepAlive: *keepalive, ReplayInterval: *replay, Logger: log, SignAck: signAck, SignReplay: signReplay}
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			fmt.Fprintf(stderr, "--password-file: %v\n", err)
			return 2
		}
		opts.Password = strings.TrimSpace(string(b))
	}
	if *ca != "" || *cert != "" {
		tc, err := tlsConfig(*ca, *cert, *key)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		opts.TLS = tc
	}
	store, err := fleet.OpenStore(*db)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer store.Close()
	r, err := fleet.Start(ctx, store, opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "papscan-fleet: storing %v into %s\n", r.Filters(), *db)
	<-ctx.Done()
	<-r.Done()
	r.Close()
	st := r.Stats()
	fmt.Fprintf(stdout, "papscan-fleet: stored %d, duplicates %d, acks %d, replay requests %d, dropped %d\n",
		st.Stored, st.Duplicates, st.AcksSent, st.Replays, st.Dropped)
	return 0
}

func tlsConfig(ca, cert, key string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca: %s holds no PEM certificate", ca)
		}
		tc.RootCAs = pool
	}
	if cert != "" || key != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

func runList(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "fleet.db", "store file")
	robot := fs.String("robot", "", "only this robot")
	asJSON := fs.Bool("json", false, "one JSON record per line (with the envelope)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := os.Stat(*db); err != nil {
		fmt.Fprintf(stderr, "papscan-fleet list: %v\n", err)
		return 1
	}
	store, err := fleet.OpenStore(*db)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer store.Close()
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "ROBOT\tKIND\tID\tSLIDE/EVENT\tSEQ\tCOPIES\tRECEIVED")
	}
	n := 0
	err = store.List(*robot, func(r fleet.Record) error {
		n++
		if *asJSON {
			b, _ := json.Marshal(r)
			_, err := fmt.Fprintf(stdout, "%s\n", b)
			return err
		}
		what := r.SlideID
		if r.Kind == "event" {
			what = r.Event
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.RobotID, r.Kind, r.ID, what, r.Seq, r.Copies, r.ReceivedAt.Format(time.RFC3339))
		return err
	})
	tw.Flush()
	if err != nil && !errors.Is(err, fleet.ErrStopList) {
		fmt.Fprintln(stderr, err)
		return 1
	}
	gaps, _ := store.Gaps()
	if !*asJSON {
		fmt.Fprintf(stdout, "%d records", n)
		for _, g := range gaps {
			fmt.Fprintf(stdout, "; gap %s seq %d..%d", g.RobotID, g.From, g.To)
		}
		fmt.Fprintln(stdout)
	}
	return 0
}
