package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	neturl "net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"papscan/fleet/store"

	"papscan/telemetry"
	"papscan/telemetry/broker"
	"papscan/telemetry/outbox"
)

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{nil, {"nope"}, {"run"}, {"run", "--bogus"}} {
		if code := run(t.Context(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	errb.Reset()
	if code := run(t.Context(), []string{"run", "--broker", "tcp://127.0.0.1:1", "--ack-key", filepath.Join(t.TempDir(), "absent.pem")}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--ack-key") {
		t.Errorf("unreadable --ack-key: exit %d, %s", code, errb.String())
	}
	if code := run(t.Context(), []string{"list", "--db", filepath.Join(t.TempDir(), "absent.db")}, &out, &errb); code != 1 {
		t.Errorf("list of a missing store: exit %d, want 1", code)
	}
}

// TestRunAndList: `papscan-fleet run` stores a robot's result and acks it
// (the robot's outbox empties); `list` shows it.
func TestRunAndList(t *testing.T) {
	b, err := broker.Start(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "fleet.sqlite")
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"run", "--broker", b.URL(), "--db", db, "--log-level", "warn"}, &out, &errb)
	}()

	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	id := telemetry.NewID()
	if _, err := ob.PutResult("M0001-S00", id, []byte(`{"verdict":"NILM"}`)); err != nil {
		t.Fatal(err)
	}
	snd := outbox.NewSender(ob, outbox.SenderOptions{AckTimeout: time.Second}) // resent if the receiver subscribed late
	tctx, tcancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer tcancel()
	tm, err := telemetry.Dial(tctx, telemetry.Options{Brokers: []string{b.URL()}, RobotID: "r9",
		OnAck: snd.HandleAck, OnReplay: snd.HandleReplay, OnConnected: snd.Reconnected, UnsignedFleet: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close(context.Background())
	go func() { _ = snd.Run(tctx, tm) }()
	for ob.Depth() != 0 {
		select {
		case <-tctx.Done():
			t.Fatal("the fleet never acked")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("run exit %d: %s", code, errb.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"list", "--db", db}, &out, &errb); code != 0 {
		t.Fatalf("list exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), id) || !strings.Contains(out.String(), "M0001-S00") || !strings.Contains(out.String(), "1 records") {
		t.Fatalf("list output:\n%s", out.String())
	}
}

// TestLocalDemo: `papscan-fleet local --demo` starts broker, receiver,
// SQLite and the review station, stores the three demonstration slides
// with their galleries, and prints a link and an account that log in.
func TestLocalDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	done := make(chan int, 1)
	dir := t.TempDir()
	go func() {
		done <- run(ctx, []string{"local", "--dir", dir, "--listen", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0", "--demo", "--data", filepath.Join(dir, "none")}, pw, &errb)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var url, user, pass string
	for sc.Scan() {
		line := sc.Text()
		if u, ok := strings.CutPrefix(line, "review station: "); ok {
			url = u
		}
		if rest, ok := strings.CutPrefix(line, "  log in as "); ok {
			f := strings.Fields(strings.NewReplacer(",", " ").Replace(rest))
			user, pass = f[0], f[2]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if url == "" || user == "" {
		cancel()
		t.Fatalf("no link or account printed: %s", errb.String())
	}
	st, err := store.Open(t.Context(), filepath.Join(dir, "fleet.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	wl, err := st.Worklist(t.Context(), store.Filter{})
	if err != nil || len(wl) != 3 || wl[0].Verdict != "HIGH_GRADE" || wl[0].Images != 7 {
		t.Fatalf("worklist %+v %v", wl, err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(url + "login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	resp, err = c.PostForm(url+"login", neturl.Values{"csrf": {string(m[1])}, "username": {user}, "password": {pass}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "DEMO-0001") {
		t.Fatalf("worklist after login: %d", resp.StatusCode)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("local exit %d: %s", code, errb.String())
	}
}

func TestUserAdd(t *testing.T) {
	db := filepath.Join(t.TempDir(), "f.sqlite")
	var out, errb bytes.Buffer
	if code := runUserAdd(t.Context(), []string{"--db", db, "--user", "ann", "--role", "reviewer"}, strings.NewReader("short\n"), &out, &errb); code != 2 {
		t.Fatalf("short password: exit %d", code)
	}
	if code := runUserAdd(t.Context(), []string{"--db", db, "--user", "ann", "--role", "reviewer"}, strings.NewReader("a long passphrase\n"), &out, &errb); code != 0 {
		t.Fatalf("useradd: exit %d %s", code, errb.String())
	}
	if code := runUserAdd(t.Context(), []string{"--db", db, "--user", "ann", "--role", "reviewer"}, strings.NewReader("a long passphrase\n"), &out, &errb); code != 1 {
		t.Fatalf("duplicate useradd: exit %d", code)
	}
}

// `papscan-fleet --help` was an unknown command (issue 14).
func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		var out, errb bytes.Buffer
		if rc := run(context.Background(), []string{arg}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "review station") || errb.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, rc, out.String(), errb.String())
		}
	}
}
