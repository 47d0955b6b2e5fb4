package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/panel"
	"papscan/scan"
	"papscan/telemetry"
)

// deliverer stores each slide's report in the state directory and commits
// it to the durable outbox, whose sender publishes it until the fleet acks
// it. Storing comes first: a result that reached the disk is never lost,
// even if the broker is away. When the disk is full it refuses the next
// slide (a storage fault).
type deliverer struct {
	stateDir string
	link     *link
	log      *slog.Logger
	jsonOut  io.Writer // one JSON object per slide, if set

	reports []*scan.Report
	paths   map[string]string // result ID -> result.json path
	unsent  int
}

func (d *deliverer) deliver(ctx context.Context, r *scan.Report) error {
	files, err := r.WriteFiles(d.stateDir)
	if err != nil {
		err = fmt.Errorf("store result: %w", err)
		if d.link != nil {
			return d.link.storageFault(ctx, err)
		}
		return err
	}
	if d.paths == nil {
		d.paths = map[string]string{}
	}
	d.paths[r.ResultID] = files.Result
	d.reports = append(d.reports, r)
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if d.jsonOut != nil {
		fmt.Fprintf(d.jsonOut, "%s\n", simJSONLine(r))
	}
	if d.link != nil {
		// Durable first; the outbox sender publishes it and keeps it
		// until the fleet's ack. A full disk refuses the next slide.
		if err := d.link.commit(ctx, r.SlideID, r.ResultID, body, r.Verdict == "INCOMPLETE"); err != nil {
			d.unsent++
			return err
		}
		if err := d.link.admit(ctx); err != nil {
			return err
		}
	}
	d.log.Info("slide done", "slide", r.SlideID, "verdict", r.Verdict, "cells", r.Result.Cells,
		"tiles", fmt.Sprintf("%d/%d", r.TilesAnalysed, r.TilesPlanned), "machine_s", round1(r.Timing.Machine.Seconds()), "dir", files.Dir)
	return nil
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

// dialTelemetry connects to the configured brokers.
func dialTelemetry(ctx context.Context, cfg *config.Config, brokers []string, log *slog.Logger, mods ...func(*telemetry.Options)) (*telemetry.Client, error) {
	m := cfg.Agent.MQTT
	opts := telemetry.Options{
		Brokers:     brokers,
		ClientID:    cfg.EffectiveClientID(),
		RobotID:     cfg.Agent.RobotID,
		TopicPrefix: cfg.EffectiveTopicPrefix(),
		Username:    m.Username,
		KeepAlive:   m.KeepAlive.D(),
		Logger:      log,
	}
	if m.PasswordFile != "" {
		b, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("agent.mqtt.password_file: %w", err)
		}
		opts.Password = strings.TrimSpace(string(b))
	}
	if m.TLS.CAFile != "" || m.TLS.CertFile != "" {
		tc, err := tlsConfig(m.TLS)
		if err != nil {
			return nil, err
		}
		opts.TLS = tc
	}
	for _, mod := range mods {
		mod(&opts)
	}
	return telemetry.Dial(ctx, opts)
}

func tlsConfig(t config.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("agent.mqtt.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("agent.mqtt.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("agent.mqtt.tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// exitCodeFor maps an agent error to the documented exit codes.
func exitCodeFor(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitOK // asked to stop
	case errors.Is(err, hal.ErrFault), errors.Is(err, hal.ErrTimeout), errors.Is(err, hal.ErrNotHomed), errors.Is(err, hal.ErrOutOfTravel):
		return exitFault
	}
	return exitFailure
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// startPanel shows "starting" and clocks the panel's blink patterns until
// the returned stop is called (it switches the LEDs off).
func startPanel(ctx context.Context, p *panel.Panel) (stop func()) {
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(pctx)
	}()
	_ = p.Show(panel.StateStarting)
	return func() {
		cancel()
		<-done
	}
}

// closeTelemetry says goodbye to the broker, bounded even when ctx has
// ended (the offline state is what the fleet should see).
func closeTelemetry(ctx context.Context, tm *telemetry.Client) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tm.Close(cctx)
}
