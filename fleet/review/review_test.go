package review_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"papscan/fleet"
	"papscan/fleet/review"
	"papscan/fleet/store"
	tfleet "papscan/telemetry/fleet"
)

// Accounts of the fixture (passwords are the names repeated).
var accounts = map[string]string{"ann": store.RoleReviewer, "sue": store.RoleSupervisor, "root": store.RoleAdmin}

func password(user string) string { return user + "-" + user + "-" + user + "-pw" }

func dataDir() string {
	if d := os.Getenv("PAPSCAN_DATA"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared", "data")
}

// fixture is a review station over a SQLite store holding the three demo
// slides of two robots at two sites, with their images.
type fixture struct {
	st  *store.Store
	ts  *httptest.Server
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: argon2id (64 MiB) is slow under emulation; the review station runs in the full suite")
	}
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "fleet.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	for i, robot := range []string{"robot-07", "robot-12"} {
		slides := fleet.DemoSlides()
		for j := range slides {
			slides[j].SlideID += string(rune('A' + i))
		}
		if i == 1 {
			slides = slides[1:] // the second site has no high-grade slide
		}
		msgs, err := fleet.DemoRobot("papscan", robot, slides, dataDir(), at)
		if err != nil {
			t.Fatal(err)
		}
		var items []tfleet.Item
		for _, m := range msgs {
			it, ok := tfleet.Parse(m.Topic, m.Payload, []string{"lisbon-north", "porto-east"}[i], at)
			if !ok || it.Reject != "" {
				t.Fatalf("demo message refused: %s", it.Reject)
			}
			items = append(items, it)
		}
		if _, err := st.Commit(ctx, items); err != nil {
			t.Fatal(err)
		}
	}
	for u, role := range accounts {
		h, err := review.HashPassword(password(u))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(ctx, "fixture", store.User{Username: u, Role: role, PasswordHash: h}); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{st: st, now: time.Now()}
	srv, err := review.New(review.Options{Store: st, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.ts = httptest.NewServer(srv)
	t.Cleanup(f.ts.Close)
	return f
}

// client is a browser-like HTTP client with a cookie jar that does not
// follow redirects.
func (f *fixture) client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, c *http.Client, u string, v url.Values) (int, string, *http.Response) {
	t.Helper()
	resp, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

func (f *fixture) login(t *testing.T, c *http.Client, user, pw string) (int, *http.Response) {
	t.Helper()
	_, body := get(t, c, f.ts.URL+"/login")
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("login form without CSRF token")
	}
	code, _, resp := post(t, c, f.ts.URL+"/login", url.Values{"csrf": {m[1]}, "username": {user}, "password": {pw}, "next": {"/"}})
	return code, resp
}

func (f *fixture) loggedIn(t *testing.T, user string) *http.Client {
	t.Helper()
	c := f.client(t)
	if code, _ := f.login(t, c, user, password(user)); code != http.StatusSeeOther {
		t.Fatalf("login %s: %d", user, code)
	}
	return c
}

func TestLoginAndCookies(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	if code, _ := get(t, c, f.ts.URL+"/"); code != http.StatusSeeOther {
		t.Fatalf("worklist without login: %d, want a redirect to /login", code)
	}
	code, resp := f.login(t, c, "ann", password("ann"))
	if code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	var sess *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "papscan_session" {
			sess = ck
		}
	}
	if sess == nil || !sess.Secure || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || len(sess.Value) < 40 {
		t.Fatalf("session cookie %+v: want Secure, HttpOnly, SameSite=Strict, a long random token", sess)
	}
	code, body := get(t, c, f.ts.URL+"/")
	if code != 200 || !strings.Contains(body, "DEMO-0001A") {
		t.Fatalf("worklist: %d", code)
	}
	// The stored session is the token's hash, never the token.
	var n int
	if err := f.st.DB().QueryRow(`SELECT COUNT(*) FROM sessions WHERE token_hash = ?`, sess.Value).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the raw session token is in the database (%d, %v)", n, err)
	}
	// Log out: the session is gone.
	m := csrfRe.FindStringSubmatch(body)
	if code, _, _ := post(t, c, f.ts.URL+"/logout", url.Values{"csrf": {m[1]}}); code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := get(t, c, f.ts.URL+"/"); code != http.StatusSeeOther {
		t.Fatalf("worklist after logout: %d", code)
	}
}

func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	for i := range 5 {
		if code, _ := f.login(t, c, "ann", "wrong password"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, code)
		}
	}
	// Even the right password is refused now, until the window passes.
	if code, resp := f.login(t, c, "ann", password("ann")); code != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("6th login: %d, want 429 with Retry-After", code)
	}
	f.now = f.now.Add(16 * time.Minute)
	if code, _ := f.login(t, c, "ann", password("ann")); code != http.StatusSeeOther {
		t.Fatalf("login after the window: %d", code)
	}
	log, _ := f.st.AuditLog(t.Context(), "", "", 20)
	fails := 0
	for _, e := range log {
		if e.Action == "login_failed" {
			fails++
		}
	}
	if fails != 5 {
		t.Fatalf("%d login_failed audit entries, want 5", fails)
	}
}

func TestWorklistOrderAndFilters(t *testing.T) {
	f := newFixture(t)
	c := f.loggedIn(t, "ann")
	_, body := get(t, c, f.ts.URL+"/")
	order := regexp.MustCompile(`>(DEMO-000\d[AB])<`).FindAllStringSubmatch(body, -1)
	var got []string
	for _, m := range order {
		got = append(got, m[1])
	}
	// HIGH_GRADE, then LOW_GRADE by top score, then NILM.
	if strings.Join(got, " ") != "DEMO-0001A DEMO-0002A DEMO-0002B DEMO-0003A DEMO-0003B" {
		t.Fatalf("worklist order %v", got)
	}
	_, body = get(t, c, f.ts.URL+"/?site=porto-east&verdict=LOW_GRADE")
	if !strings.Contains(body, "DEMO-0002B") || strings.Contains(body, "DEMO-0002A") || strings.Contains(body, "DEMO-0001A") {
		t.Fatal("site+verdict filter")
	}
	_, body = get(t, c, f.ts.URL+"/?from=2030-01-01")
	if !strings.Contains(body, "No slides match") {
		t.Fatal("date filter")
	}
}

func slideURL(t *testing.T, f *fixture, slide string) string {
	t.Helper()
	wl, err := f.st.Worklist(t.Context(), store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range wl {
		if s.SlideID == slide {
			return f.ts.URL + "/slide/" + s.RobotID + "/" + s.ResultID
		}
	}
	t.Fatalf("no slide %s", slide)
	return ""
}

func TestSlideSignOutAndSecondReview(t *testing.T) {
	f := newFixture(t)
	ann := f.loggedIn(t, "ann")
	u := slideURL(t, f, "DEMO-0001A")
	code, body := get(t, ann, u)
	if code != 200 {
		t.Fatalf("slide: %d", code)
	}
	for _, want := range []string{"HIGH_GRADE", "HSIL", "stage x", "µm RMS", "cnn-demo", "676 of 676 tiles", `class="mark"`} {
		if !strings.Contains(body, want) {
			t.Errorf("slide page lacks %q", want)
		}
	}
	imgs := regexp.MustCompile(`<img src="(/img/[^"]+)"`).FindAllStringSubmatch(body, -1)
	if len(imgs) != 7 { // 6 crops + overview
		t.Fatalf("%d images on the slide page, want 7", len(imgs))
	}
	resp, err := ann.Get(f.ts.URL + imgs[0][1])
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("image: %v %v", resp, err)
	}
	resp.Body.Close()
	csrf := csrfRe.FindStringSubmatch(body)[1]
	// Without the CSRF token: refused, nothing stored.
	if code, _, _ := post(t, ann, u+"/signout", url.Values{"interpretation": {"NILM"}}); code != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF: %d, want 403", code)
	}
	if code, _, _ := post(t, ann, u+"/signout", url.Values{"interpretation": {"NILM"}, "csrf": {"forged"}}); code != http.StatusForbidden {
		t.Fatalf("sign-out with a forged CSRF token: %d, want 403", code)
	}
	// The reviewer calls it NILM: disagrees with the robot.
	if code, _, _ := post(t, ann, u+"/signout", url.Values{"interpretation": {"NILM"}, "comment": {"<script>alert(1)</script> reactive changes only"}, "csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", code)
	}
	_, body = get(t, ann, u)
	if !strings.Contains(body, "second review") || !strings.Contains(body, "disagrees with robot") || strings.Contains(body, "<script>alert") {
		t.Fatal("after a disagreeing sign-out the slide waits for a second review (and the comment is escaped)")
	}
	if code, _, _ := post(t, ann, u+"/signout", url.Values{"interpretation": {"HSIL"}, "csrf": {csrf}}); code != http.StatusForbidden {
		t.Fatalf("second review by a reviewer: %d, want 403", code)
	}
	sue := f.loggedIn(t, "sue")
	_, body = get(t, sue, u)
	csrfSue := csrfRe.FindStringSubmatch(body)[1]
	if code, _, _ := post(t, sue, u+"/signout", url.Values{"interpretation": {"HSIL"}, "comment": {"agree with robot"}, "csrf": {csrfSue}}); code != http.StatusSeeOther {
		t.Fatalf("second review: %d", code)
	}
	_, body = get(t, sue, u)
	if !strings.Contains(body, "signed out") || strings.Count(body, "sign_out") != 2 {
		t.Fatal("signed out with two audit entries")
	}
}

func TestRoles(t *testing.T) {
	f := newFixture(t)
	ann := f.loggedIn(t, "ann")
	for _, p := range []string{"/admin/users", "/audit"} {
		if code, _ := get(t, ann, f.ts.URL+p); code != http.StatusForbidden {
			t.Errorf("reviewer GET %s: %d, want 403", p, code)
		}
	}
	root := f.loggedIn(t, "root")
	code, body := get(t, root, f.ts.URL+"/admin/users")
	if code != 200 {
		t.Fatalf("admin: %d", code)
	}
	csrf := csrfRe.FindStringSubmatch(body)[1]
	if code, _, _ := post(t, root, f.ts.URL+"/admin/users", url.Values{"username": {"dan"}, "password": {"short"}, "role": {"reviewer"}, "csrf": {csrf}}); code != http.StatusBadRequest {
		t.Fatalf("short password: %d", code)
	}
	if code, _, _ := post(t, root, f.ts.URL+"/admin/users", url.Values{"username": {"dan"}, "password": {"long enough pw"}, "role": {"reviewer"}, "csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("create user: %d", code)
	}
	u, err := f.st.User(t.Context(), "dan")
	if err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=65536,t=3,p=2$") || !review.VerifyPassword(u.PasswordHash, "long enough pw") {
		t.Fatalf("user %+v %v", u, err)
	}
	// An admin manages accounts but does not sign out cases.
	if code, _, _ := post(t, root, slideURL(t, f, "DEMO-0003A")+"/signout", url.Values{"interpretation": {"NILM"}, "csrf": {csrf}}); code != http.StatusForbidden {
		t.Fatalf("admin sign-out: %d, want 403", code)
	}
	log, _ := f.st.AuditLog(t.Context(), "", "", 50)
	forbidden := 0
	for _, e := range log {
		if e.Action == "forbidden" {
			forbidden++
		}
	}
	if forbidden != 3 {
		t.Fatalf("%d forbidden audit entries, want 3", forbidden)
	}
}

func TestPasswordHash(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: argon2id is slow under emulation")
	}
	h, err := review.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !review.VerifyPassword(h, "correct horse battery") || review.VerifyPassword(h, "correct horse batterY") {
		t.Fatal("verify")
	}
	h2, _ := review.HashPassword("correct horse battery")
	if h == h2 {
		t.Fatal("no salt")
	}
	for _, bad := range []string{"", "$argon2id$", "$argon2i$v=19$m=65536,t=3,p=2$c2FsdA$a2V5", "$argon2id$v=19$m=999999999,t=3,p=2$c2FsdA$a2V5"} {
		if review.VerifyPassword(bad, "x") {
			t.Errorf("hash %q verified", bad)
		}
	}
}

// TestSlowLink: pages are small and compressed, images cacheable; the
// figures are logged (the slide page's HTML, its images).
func TestSlowLink(t *testing.T) {
	f := newFixture(t)
	c := f.loggedIn(t, "ann")
	size := func(u string, gz bool) (int, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		// The transport itself, so the gzip body is not decoded for us.
		resp, err := http.DefaultTransport.RoundTrip(withCookies(c, req))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return len(b), resp.Header
	}
	u := slideURL(t, f, "DEMO-0001A")
	n, h := size(u, true)
	if h.Get("Content-Encoding") != "gzip" || n > 8<<10 {
		t.Fatalf("slide page: %d bytes, encoding %q; want gzip under 8 KiB", n, h.Get("Content-Encoding"))
	}
	_, body := get(t, c, u)
	total := 0
	for _, m := range regexp.MustCompile(`<img src="(/img/[^"]+)"`).FindAllStringSubmatch(body, -1) {
		k, ih := size(f.ts.URL+m[1], false)
		if !strings.Contains(ih.Get("Cache-Control"), "immutable") {
			t.Errorf("image %s not cacheable: %q", m[1], ih.Get("Cache-Control"))
		}
		total += k
	}
	wl, _ := size(f.ts.URL+"/", true)
	t.Logf("slide page %d bytes gzip, its 7 images %d bytes; worklist %d bytes gzip", n, total, wl)
}

func withCookies(c *http.Client, req *http.Request) *http.Request {
	for _, ck := range c.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	return req
}
