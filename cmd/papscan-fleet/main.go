// Command papscan-fleet is the fleet side's tool (it runs at the lab, not
// on the robot): the receiver stores every result, image and event the
// robots publish into the fleet database (PostgreSQL, or an SQLite file),
// acknowledges each after its own commit, asks robots to replay when their
// sequence numbers show a gap, and several receivers can share the
// traffic; serve is the review station; local runs everything in one
// process on the embedded defaults; keygen and send command robots with
// signed commands (docs/commands.md).
//
//	papscan-fleet run     --broker tcp://127.0.0.1:1883 [--broker ...] --db postgres://...|fleet.sqlite [--share fleet] [--sites] [--robot +] [--ack-key receiver.pem]
//	papscan-fleet serve   --db DSN [--listen 127.0.0.1:8080] [--tls-cert c.pem --tls-key k.pem]
//	papscan-fleet useradd --db DSN --user NAME --role reviewer|supervisor|admin  (password on stdin)
//	papscan-fleet local   [--dir papscan-fleet] [--listen 127.0.0.1:8080] [--broker-listen 127.0.0.1:1883] [--demo]
//	papscan-fleet list    --db DSN [--robot R] [--json]
//	papscan-fleet keygen  --id fleet-2026 --out fleet-2026.pem
//	papscan-fleet send    --broker URL --robot ID --fleet-key fleet-2026.pem [--args JSON] TYPE
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
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"papscan/fleet/store"
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

// fleetUsage is what --help prints.
const fleetUsage = `usage: papscan-fleet COMMAND [flags]   (papscan-fleet COMMAND -h lists a command's flags)

The fleet side of papscan (not for the robot):
  run      receive robots' results, images and events into the fleet database (PostgreSQL or SQLite)
  serve    the review station: worklist, slide pages, sign-out, audit
  useradd  create or update a review-station account (password on stdin)
  local    broker + receiver + SQLite + review station in one process (simulator, single site)
  list     list the stored results
  keygen   make an Ed25519 key pair (fleet commands, signed acks)
  send     send a signed command to a robot
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: papscan-fleet run|serve|useradd|local|list|keygen|send [flags] (papscan-fleet run -h)")
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, fleetUsage)
		return 0
	case "run":
		return runReceiver(ctx, args[1:], stdout, stderr)
	case "list":
		return runList(ctx, args[1:], stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "useradd":
		return runUserAdd(ctx, args[1:], os.Stdin, stdout, stderr)
	case "local":
		return runLocal(ctx, args[1:], stdout, stderr)
	case "keygen":
		return runKeygen(args[1:], stdout, stderr)
	case "send":
		return runSend(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "papscan-fleet: unknown command %q (want run, serve, useradd, local, list, keygen or send)\n", args[0])
	return 2
}

func runReceiver(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var brokers, robots list
	fs.Var(&brokers, "broker", "broker URL, repeat for failover (tcp://, ssl://, ws://, wss://)")
	fs.Var(&robots, "robot", "robot ID to follow, repeat; default + (every robot)")
	db := fs.String("db", "fleet.sqlite", "fleet database: postgres://user@host/db (a fleet, several receivers) or an SQLite file (one site)")
	share := fs.String("share", "", "MQTT shared-subscription group: receivers with the same group split the robots' traffic")
	sites := fs.Bool("sites", false, "central receiver behind bridged site brokers: topics sites/<site>/<prefix>/...")
	site := fs.String("site", "", "site name recorded with the results (without --sites)")
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
	signAck, signReplay, err := ackSigners(*ackKey)
	if err != nil {
		fmt.Fprintf(stderr, "papscan-fleet run: --ack-key: %v\n", err)
		return 2
	}
	log := logger(stderr, *level)
	opts := fleet.Options{Brokers: brokers, Robots: robots, TopicPrefix: *prefix, ClientID: *clientID,
		Share: *share, Sites: *sites, Site: *site,
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
	st, err := store.Open(ctx, *db)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer st.Close()
	r, err := fleet.Start(ctx, st, opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "papscan-fleet: storing %v into %s (%s)\n", r.Filters(), redact(*db), st.Engine())
	<-ctx.Done()
	<-r.Done()
	r.Close()
	rs := r.Stats()
	fmt.Fprintf(stdout, "papscan-fleet: stored %d, duplicates %d, quarantined %d, acks %d, replay requests %d, dropped %d\n",
		rs.Stored, rs.Duplicates, rs.Quarantined, rs.AcksSent, rs.Replays, rs.Dropped)
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

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "fleet.sqlite", "fleet database (postgres://... or an SQLite file)")
	robot := fs.String("robot", "", "only this robot")
	asJSON := fs.Bool("json", false, "one JSON record per line")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !isPostgres(*db) {
		if _, err := os.Stat(strings.TrimPrefix(*db, "sqlite:")); err != nil {
			fmt.Fprintf(stderr, "papscan-fleet list: %v\n", err)
			return 1
		}
	}
	st, err := store.Open(ctx, *db)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer st.Close()
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "ROBOT\tKIND\tID\tSLIDE/EVENT\tSEQ\tSITE\tRECEIVED")
	}
	n := 0
	err = st.List(ctx, *robot, func(r fleet.Record) error {
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
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.RobotID, r.Kind, r.ID, what, r.Seq, r.Site, r.ReceivedAt.Format(time.RFC3339))
		return err
	})
	tw.Flush()
	if err != nil && !errors.Is(err, fleet.ErrStopList) {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if !*asJSON {
		c, _ := st.Count(ctx)
		fmt.Fprintf(stdout, "%d records (%d results, %d images, %d events; %d refused messages in quarantine)\n", n, c.Results, c.ImageRecords, c.Events, c.Quarantined)
	}
	return 0
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// redact hides a password in a PostgreSQL URL.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return dsn
}
