package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	pfleet "papscan/fleet"
	"papscan/fleet/review"
	"papscan/fleet/store"
	"papscan/telemetry"
	"papscan/telemetry/command"
)

func logger(stderr io.Writer, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
}

// ackSigners reads the receiver's signing key (PEM from keygen) and returns
// the functions that sign its acks and replay requests; path "" signs
// nothing.
func ackSigners(path string) (func(*telemetry.Ack), func(*telemetry.Replay), error) {
	if path == "" {
		return nil, nil, nil
	}
	sk, err := command.ReadSigningKeyFile(path)
	if err != nil {
		return nil, nil, err
	}
	return func(a *telemetry.Ack) { command.SignAck(sk, a) }, func(r *telemetry.Replay) { command.SignReplay(sk, r) }, nil
}

// runServe is the review station on a fleet database.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "fleet.sqlite", "fleet database (postgres://... or an SQLite file)")
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on")
	cert := fs.String("tls-cert", "", "TLS certificate (PEM); without it plain HTTP (loopback, or behind a TLS proxy)")
	key := fs.String("tls-key", "", "TLS key (PEM)")
	insecure := fs.Bool("insecure-cookies", false, "session cookies without Secure (plain HTTP on a host other than localhost; never in a lab)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if (*cert == "") != (*key == "") {
		fmt.Fprintln(stderr, "papscan-fleet serve: --tls-cert and --tls-key go together")
		return 2
	}
	log := logger(stderr, *level)
	st, err := store.Open(ctx, *db)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer st.Close()
	h, err := review.New(review.Options{Store: st, Logger: log, InsecureCookies: *insecure})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute}
	scheme := "http"
	if *cert != "" {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "papscan-fleet: review station at %s://%s/ on %s\n", scheme, ln.Addr(), redact(*db))
	if us, err := st.Users(ctx); err == nil && len(us) == 0 {
		fmt.Fprintf(stdout, "no accounts yet: papscan-fleet useradd --db %s --user NAME --role admin\n", redact(*db))
	}
	errc := make(chan error, 1)
	go func() {
		if *cert != "" {
			errc <- srv.ServeTLS(ln, *cert, *key)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		fmt.Fprintln(stderr, err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return 0
}

// runUserAdd creates an account; the password is the first line of stdin.
func runUserAdd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("useradd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "fleet.sqlite", "fleet database (postgres://... or an SQLite file)")
	user := fs.String("user", "", "account name")
	role := fs.String("role", "reviewer", "reviewer, supervisor or admin")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *user == "" {
		fmt.Fprintln(stderr, "papscan-fleet useradd: --user is required")
		return 2
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 2048)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(stderr, err)
		return 1
	}
	h, err := review.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		fmt.Fprintf(stderr, "papscan-fleet useradd: password on stdin: %v\n", err)
		return 2
	}
	st, err := store.Open(ctx, *db)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer st.Close()
	if err := st.CreateUser(ctx, "papscan-fleet useradd", store.User{Username: *user, Role: *role, PasswordHash: h}); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "papscan-fleet: account %s (%s) created\n", *user, *role)
	return 0
}

// runLocal is the whole fleet side in one process on the embedded
// defaults: MQTT broker, receiver, SQLite, review station.
func runLocal(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "papscan-fleet", "directory of the SQLite database")
	listen := fs.String("listen", "", "review station address (default 127.0.0.1:8080, else a free port)")
	brokerListen := fs.String("broker-listen", "", "embedded MQTT broker address (loopback; default 127.0.0.1:1883, else a free port); robots connect here")
	demo := fs.Bool("demo", false, "publish three demonstration slides (HIGH_GRADE, LOW_GRADE, NILM) with galleries as a simulated robot")
	data := fs.String("data", "", "shared data directory with cric/cells for the demonstration's cells (default $PAPSCAN_DATA, else ../shared/data)")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	ackKey := fs.String("ack-key", "", "receiver signing key (PEM from keygen): acks are signed, for robots with agent.mqtt.ack_keys")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := logger(stderr, *level)
	signAck, signReplay, err := ackSigners(*ackKey)
	if err != nil {
		fmt.Fprintf(stderr, "papscan-fleet local: --ack-key: %v\n", err)
		return 2
	}
	l, err := pfleet.StartLocal(ctx, pfleet.LocalOptions{Dir: *dir, BrokerAddr: *brokerListen, HTTPAddr: *listen, DemoAccount: true,
		SignAck: signAck, SignReplay: signReplay, Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer l.Close()
	fmt.Fprintf(stdout, "papscan-fleet: MQTT broker %s, database %s\n", l.BrokerURL, filepath.Join(*dir, "fleet.sqlite"))
	fmt.Fprintf(stdout, "robots: papscan sim --broker %s\n", l.BrokerURL)
	if *demo {
		if *data == "" {
			*data = os.Getenv("PAPSCAN_DATA")
		}
		if *data == "" {
			*data = filepath.Join("..", "shared", "data")
		}
		n, err := publishDemo(ctx, l.BrokerURL, *data)
		if err != nil {
			fmt.Fprintf(stderr, "papscan-fleet local: demo: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "demo robot: %d slides stored and acked\n", n)
	}
	fmt.Fprintf(stdout, "review station: %s\n", l.URL)
	if l.Password != "" {
		fmt.Fprintf(stdout, "  log in as %s, password %s (a supervisor; more accounts: papscan-fleet useradd --db %s)\n", l.User, l.Password, filepath.Join(*dir, "fleet.sqlite"))
	}
	<-ctx.Done()
	return 0
}

// publishDemo publishes the demonstration robot's messages and waits for
// the fleet's acks.
func publishDemo(ctx context.Context, broker, dataDir string) (int, error) {
	const robot = "sim-demo"
	slides := pfleet.DemoSlides()
	msgs, err := pfleet.DemoRobot(telemetry.DefaultTopicPrefix, robot, slides, dataDir, time.Now().UTC())
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	pending := map[string]bool{}
	for _, m := range msgs {
		pending[m.ID] = true
	}
	allAcked := make(chan struct{})
	po := telemetry.SessionOptions(telemetry.Session{Brokers: []string{broker}, ClientID: robot, KeepAlive: 30 * time.Second, MaxReconnectInterval: time.Second})
	c := paho.NewClient(po)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return 0, fmt.Errorf("connect %s: %v", broker, tok.Error())
	}
	defer c.Disconnect(250)
	tok := c.Subscribe(telemetry.AckTopic(telemetry.DefaultTopicPrefix, robot), 1, func(_ paho.Client, m paho.Message) {
		var a telemetry.Ack
		if json.Unmarshal(m.Payload(), &a) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range a.IDs {
			delete(pending, id)
		}
		if len(pending) == 0 {
			select {
			case <-allAcked:
			default:
				close(allAcked)
			}
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return 0, fmt.Errorf("subscribe: %v", tok.Error())
	}
	for attempt := 0; attempt < 5; attempt++ {
		mu.Lock()
		var send []pfleet.Message
		for _, m := range msgs {
			if pending[m.ID] {
				send = append(send, m)
			}
		}
		mu.Unlock()
		for _, m := range send {
			c.Publish(m.Topic, 1, false, m.Payload)
		}
		select {
		case <-allAcked:
			return len(slides), nil
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(3 * time.Second): // not acked yet: send again, like the outbox
		}
	}
	return 0, errors.New("the fleet did not ack the demonstration robot's messages")
}
