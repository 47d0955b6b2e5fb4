package logx

import (
	"bytes"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestNoSecretsInLogs(t *testing.T) {
	var buf bytes.Buffer
	lv := new(slog.LevelVar)
	log := New(&buf, lv, 0, 0, nil)
	const secret = "hunter2-S3cret"
	u, _ := url.Parse("mqtts://robot:" + secret + "@broker.lab:8883")
	log.Info("connecting",
		"password", secret,
		"mqtt_password", secret,
		"token", secret,
		"password_file", "/etc/papscan/mqtt.pass",
		"url", "mqtt://robot:"+secret+"@broker:1883",
		"parsed", u,
		"err", errors.New("dial mqtt://robot:"+secret+"@broker:1883: refused"),
		slog.Group("mqtt", "Password", secret, "username", "robot"),
		"brokers", []string{"tcp://a:1883", "ssl://robot:" + secret + "@b:8883"},
	)
	log.With("api_key", secret).WithGroup("tls").Warn("x", "private_key", secret)
	out := buf.String()
	if strings.Contains(out, secret) {
		t.Fatalf("secret in log:\n%s", out)
	}
	for _, want := range []string{"/etc/papscan/mqtt.pass", "username=robot", "broker:1883", Redacted} {
		if !strings.Contains(out, want) {
			t.Errorf("log lost %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "time=") {
		t.Errorf("timestamp in journald log: %s", out)
	}
}

func TestLevelVar(t *testing.T) {
	var buf bytes.Buffer
	lv := new(slog.LevelVar)
	log := New(&buf, lv, 0, 0, nil)
	log.Debug("hidden")
	lv.Set(slog.LevelDebug)
	log.Debug("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Errorf("level var not honoured: %q", buf.String())
	}
}

func TestRateLimit(t *testing.T) {
	var buf bytes.Buffer
	c := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	log := New(&buf, new(slog.LevelVar), 3, time.Minute, c.now).With("loop", "camera")
	for i := range 100 {
		log.Warn("frame timeout", "i", i)
		log.Info("other message")
		c.t = c.t.Add(100 * time.Millisecond) // 10 s in all: one window
	}
	out := buf.String()
	if n := strings.Count(out, "frame timeout"); n != 3 {
		t.Errorf("%d frame timeout lines in one window, want 3:\n%s", n, out)
	}
	if n := strings.Count(out, "other message"); n != 3 {
		t.Errorf("messages must be limited separately: %d", n)
	}
	c.t = c.t.Add(time.Minute)
	log.Warn("frame timeout", "i", 100)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if l := lines[len(lines)-1]; !strings.Contains(l, "suppressed=97") || !strings.Contains(l, "loop=camera") {
		t.Errorf("next window's line %q does not report 97 suppressed", l)
	}
}
