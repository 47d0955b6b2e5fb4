package fleet

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"papscan/fleet/review"
	"papscan/fleet/store"
	"papscan/telemetry"
	"papscan/telemetry/broker"
	tfleet "papscan/telemetry/fleet"
)

// LocalOptions configures StartLocal.
type LocalOptions struct {
	// Dir holds the database (Dir/fleet.sqlite) unless DSN is set.
	Dir string
	// DSN of the database (store.Open); default the SQLite file in Dir.
	DSN string
	// Brokers to receive from; empty starts the embedded broker on
	// BrokerAddr (default "127.0.0.1:1883", falling back to a free port
	// when that is taken).
	Brokers    []string
	BrokerAddr string
	// HTTPAddr of the review station; default "127.0.0.1:8080", falling
	// back to a free port when that is taken.
	HTTPAddr    string
	TopicPrefix string
	ClientID    string
	// SignAck and SignReplay sign the receiver's acks and replay
	// requests (robots with ack_keys refuse unsigned ones).
	SignAck    func(*telemetry.Ack)
	SignReplay func(*telemetry.Replay)
	// DemoAccount, when the database has no accounts, creates a
	// supervisor "demo" with a random password (Local.Password).
	DemoAccount bool
	Logger      *slog.Logger
}

// Local is the whole fleet side in one process: (embedded broker,)
// receiver, store and review station. It is what `papscan-fleet local`
// runs and what the robot's simulator can start to show its results on a
// review page.
type Local struct {
	Store     *store.Store
	Receiver  *tfleet.Receiver
	BrokerURL string
	// URL of the review station, e.g. "http://127.0.0.1:8080/".
	URL            string
	User, Password string // the demo account, if one was created

	broker *broker.Broker
	srv    *http.Server
	cancel context.CancelFunc
	served chan struct{}
}

// StartLocal starts the fleet side on the embedded defaults (SQLite, the
// embedded broker unless Brokers are given). Close stops it.
func StartLocal(ctx context.Context, o LocalOptions) (*Local, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ClientID == "" {
		o.ClientID = "papscan-fleet-local"
	}
	if o.DSN == "" {
		if o.Dir == "" {
			return nil, errors.New("fleet: local: no Dir or DSN")
		}
		if err := os.MkdirAll(o.Dir, 0o750); err != nil {
			return nil, err
		}
		o.DSN = filepath.Join(o.Dir, "fleet.sqlite")
	}
	l := &Local{served: make(chan struct{})}
	ctx, l.cancel = context.WithCancel(ctx)
	fail := func(err error) (*Local, error) { l.Close(); return nil, err }
	var err error
	if l.Store, err = store.Open(ctx, o.DSN); err != nil {
		return fail(err)
	}
	brokers := o.Brokers
	if len(brokers) == 0 {
		addr := o.BrokerAddr
		if addr == "" {
			addr = "127.0.0.1:1883"
		}
		l.broker, err = broker.Start(ctx, addr, o.Logger)
		if err != nil && o.BrokerAddr == "" { // 1883 taken (a system Mosquitto): any free port
			l.broker, err = broker.Start(ctx, "127.0.0.1:0", o.Logger)
		}
		if err != nil {
			return fail(err)
		}
		brokers = []string{l.broker.URL()}
	}
	l.BrokerURL = brokers[0]
	if l.Receiver, err = tfleet.Start(ctx, l.Store, tfleet.Options{Brokers: brokers, ClientID: o.ClientID, TopicPrefix: o.TopicPrefix,
		SignAck: o.SignAck, SignReplay: o.SignReplay, Logger: o.Logger.With("side", "fleet")}); err != nil {
		return fail(err)
	}
	if o.DemoAccount {
		if us, err := l.Store.Users(ctx); err == nil && len(us) == 0 {
			b := make([]byte, 12)
			_, _ = rand.Read(b)
			l.User, l.Password = "demo", base64.RawURLEncoding.EncodeToString(b)
			h, err := review.HashPassword(l.Password)
			if err != nil {
				return fail(err)
			}
			if err := l.Store.CreateUser(ctx, "papscan-fleet local", store.User{Username: l.User, Role: store.RoleSupervisor, PasswordHash: h}); err != nil {
				return fail(err)
			}
		}
	}
	rs, err := review.New(review.Options{Store: l.Store, Logger: o.Logger})
	if err != nil {
		return fail(err)
	}
	addr := o.HTTPAddr
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil && o.HTTPAddr == "" {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return fail(fmt.Errorf("fleet: review station: %w", err))
	}
	l.URL = "http://" + ln.Addr().String() + "/"
	l.srv = &http.Server{Handler: rs, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 5 * time.Minute}
	go func() { defer close(l.served); _ = l.srv.Serve(ln) }()
	return l, nil
}

// Broker is the embedded broker, nil when Brokers were given.
func (l *Local) Broker() *broker.Broker { return l.broker }

// Close stops the review station, the receiver, the broker and the store.
func (l *Local) Close() {
	if l.srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = l.srv.Shutdown(sctx)
		cancel()
		<-l.served
	}
	l.cancel()
	if l.Receiver != nil {
		<-l.Receiver.Done()
		l.Receiver.Close()
	}
	if l.broker != nil {
		_ = l.broker.Close()
	}
	if l.Store != nil {
		_ = l.Store.Close()
	}
}
