package review

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"papscan/fleet/store"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Options configures a Server.
type Options struct {
	Store  *store.Store
	Logger *slog.Logger
	// Now is the clock (sessions, rate limiting); default time.Now.
	Now func() time.Time
	// InsecureCookies drops the Secure attribute of the session cookie,
	// for a plain-HTTP demo on a host other than localhost (browsers keep
	// Secure cookies for http://localhost and 127.0.0.1). Never in a lab.
	InsecureCookies bool
	// SessionTTL, default 10 h (a working day).
	SessionTTL time.Duration
	// LoginFailures allowed per client address and per user name within
	// LoginWindow before logins are refused (429); default 5 per 15 min.
	LoginFailures int
	LoginWindow   time.Duration
}

// Server is the review station's HTTP handler.
type Server struct {
	opts  Options
	st    *store.Store
	log   *slog.Logger
	tmpl  map[string]*template.Template
	limit *limiter
	mux   *http.ServeMux
}

const (
	sessionCookie = "papscan_session"
	loginCookie   = "papscan_login"
)

// New builds the server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("review: no store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 10 * time.Hour
	}
	if opts.LoginFailures <= 0 {
		opts.LoginFailures = 5
	}
	if opts.LoginWindow <= 0 {
		opts.LoginWindow = 15 * time.Minute
	}
	s := &Server{opts: opts, st: opts.Store, log: opts.Logger.With("component", "review"),
		limit: newLimiter(opts.LoginFailures, opts.LoginWindow), tmpl: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"time": func(t time.Time) string {
			if t.IsZero() {
				return "–"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"score": func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
		"um":    func(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) },
		"lower": strings.ToLower,
		"verdictClass": func(v string) string {
			return "v-" + strings.ToLower(strings.ReplaceAll(v, "_", "-"))
		},
		"stateName": stateName,
	}
	for _, page := range []string{"login", "worklist", "slide", "audit", "users", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, err
		}
		s.tmpl[page] = t
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /static/", s.static)
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.Handle("POST /logout", s.auth(anyRole, s.logout))
	m.Handle("GET /{$}", s.auth(anyRole, s.worklist))
	m.Handle("GET /slide/{robot}/{result}", s.auth(anyRole, s.slide))
	m.Handle("GET /slide/{robot}/{result}/marks.css", s.auth(anyRole, s.marks))
	m.Handle("POST /slide/{robot}/{result}/signout", s.auth(signers, s.signOut))
	m.Handle("GET /img/{robot}/{image}", s.auth(anyRole, s.image))
	m.Handle("GET /audit", s.auth([]string{store.RoleSupervisor, store.RoleAdmin}, s.audit))
	m.Handle("GET /admin/users", s.auth([]string{store.RoleAdmin}, s.users))
	m.Handle("POST /admin/users", s.auth([]string{store.RoleAdmin}, s.createUser))
	s.mux = m
	return s, nil
}

var (
	anyRole = []string{store.RoleReviewer, store.RoleSupervisor, store.RoleAdmin}
	signers = []string{store.RoleReviewer, store.RoleSupervisor}
)

func stateName(s string) string {
	switch s {
	case store.StatePending:
		return "to review"
	case store.StateSecond:
		return "second review"
	case store.StateSigned:
		return "signed out"
	case store.StateOpen:
		return "open (to review + second)"
	}
	return s
}

// ServeHTTP adds the security headers every response carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if !s.opts.InsecureCookies {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	s.mux.ServeHTTP(w, r)
}

type ctxKey struct{}

// who is the logged-in user of a request.
type who struct {
	Username, Role, CSRF, TokenHash string
}

func current(r *http.Request) who {
	w, _ := r.Context().Value(ctxKey{}).(who)
	return w
}

// auth requires a session with one of roles, and a matching CSRF token on
// every POST.
func (s *Server) auth(roles []string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		if err != nil || c.Value == "" {
			s.toLogin(w, r)
			return
		}
		th := tokenHash(c.Value)
		se, u, err := s.st.Session(r.Context(), th, s.opts.Now())
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				s.fail(w, r, http.StatusServiceUnavailable, "The database is not reachable; try again.", err)
				return
			}
			s.toLogin(w, r)
			return
		}
		wu := who{Username: se.Username, Role: u.Role, CSRF: se.CSRF, TokenHash: th}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, wu))
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(se.CSRF)) != 1 {
				_ = s.st.Audit(r.Context(), se.Username, "csrf_refused", "", "", r.Method+" "+r.URL.Path)
				s.fail(w, r, http.StatusForbidden, "This form is out of date or did not come from this site (CSRF check). Reload the page and try again.", nil)
				return
			}
		}
		if !slices.Contains(roles, u.Role) {
			_ = s.st.Audit(r.Context(), se.Username, "forbidden", "", "", r.Method+" "+r.URL.Path)
			s.fail(w, r, http.StatusForbidden, "Your account ("+u.Role+") may not open this page.", nil)
			return
		}
		h(w, r)
	})
}

func (s *Server) toLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		s.fail(w, r, http.StatusUnauthorized, "Your session has ended; log in again.", nil)
		return
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// page is what every template gets.
type page struct {
	Title string
	User  who
	Data  any
	Flash string
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.User = current(r)
	var buf bytes.Buffer
	if err := s.tmpl[name].Execute(&buf, p); err != nil {
		s.log.Error("review: template", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept-Encoding")
	// Slow links: HTML is small and compressed.
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") && buf.Len() > 1024 {
		h.Set("Content-Encoding", "gzip")
		w.WriteHeader(status)
		gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		_, _ = gz.Write(buf.Bytes())
		_ = gz.Close()
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	if err != nil {
		s.log.Warn("review: request failed", "path", r.URL.Path, "status", status, "error", err)
	}
	s.render(w, r, status, "error", page{Title: http.StatusText(status), Data: msg})
}

func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=86400")
	http.FileServerFS(assets).ServeHTTP(w, r)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: !s.opts.InsecureCookies, SameSite: http.SameSiteStrictMode}
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	tok, _ := token()
	http.SetCookie(w, s.cookie(loginCookie, tok, 3600))
	s.render(w, r, http.StatusOK, "login", page{Title: "Log in", Data: map[string]string{"CSRF": tok, "Next": safeNext(r.URL.Query().Get("next"))}})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	now := s.opts.Now()
	name := r.PostFormValue("username")
	next := safeNext(r.PostFormValue("next"))
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		s.fail(w, r, http.StatusForbidden, "The login form is out of date or did not come from this site (CSRF check). Reload it and try again.", nil)
		return
	}
	keys := []string{"ip:" + clientIP(r), "user:" + name}
	if blocked, until := s.limit.blocked(now, keys...); blocked {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(until.Sub(now).Seconds()))))
		_ = s.st.Audit(r.Context(), name, "login_rate_limited", "", "", clientIP(r))
		s.fail(w, r, http.StatusTooManyRequests, "Too many failed logins; wait a few minutes and try again.", nil)
		return
	}
	u, err := s.st.User(r.Context(), name)
	ok := err == nil && !u.Disabled && VerifyPassword(u.PasswordHash, r.PostFormValue("password"))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, http.StatusServiceUnavailable, "The database is not reachable; try again.", err)
		return
	}
	if !ok {
		s.limit.fail(now, keys...)
		_ = s.st.Audit(r.Context(), name, "login_failed", "", "", clientIP(r))
		tok, _ := token()
		http.SetCookie(w, s.cookie(loginCookie, tok, 3600))
		s.render(w, r, http.StatusUnauthorized, "login", page{Title: "Log in", Flash: "Wrong user name or password.",
			Data: map[string]string{"CSRF": tok, "Next": next, "Username": name}})
		return
	}
	s.limit.reset("user:" + name)
	tok, th := token()
	csrf, _ := token()
	if err := s.st.CreateSession(r.Context(), store.Session{TokenHash: th, Username: u.Username, CSRF: csrf, Created: now, Expires: now.Add(s.opts.SessionTTL)}); err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The database is not reachable; try again.", err)
		return
	}
	_ = s.st.Audit(r.Context(), u.Username, "login", "", "", clientIP(r))
	http.SetCookie(w, s.cookie(loginCookie, "", -1))
	http.SetCookie(w, s.cookie(sessionCookie, tok, int(s.opts.SessionTTL.Seconds())))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	u := current(r)
	_ = s.st.DeleteSession(r.Context(), u.TokenHash)
	_ = s.st.Audit(r.Context(), u.Username, "logout", "", "", "")
	http.SetCookie(w, s.cookie(sessionCookie, "", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

type worklistData struct {
	Slides     []store.Slide
	Facets     store.Facets
	F          map[string]string
	Verdicts   []string
	States     []string
	Next, Prev string
}

func (s *Server) worklist(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.Filter{Site: q.Get("site"), Robot: q.Get("robot"), Verdict: q.Get("verdict"), State: q.Get("state"), Limit: 100}
	f.Offset, _ = strconv.Atoi(q.Get("offset"))
	f.Offset = max(0, min(f.Offset, 1<<20))
	if d, err := time.Parse("2006-01-02", q.Get("from")); err == nil {
		f.From = d
	}
	if d, err := time.Parse("2006-01-02", q.Get("to")); err == nil {
		f.To = d.Add(24 * time.Hour)
	}
	if !q.Has("state") {
		f.State = store.StateOpen // what still needs a reviewer
	}
	slides, err := s.st.Worklist(r.Context(), f)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The database is not reachable; try again.", err)
		return
	}
	facets, _ := s.st.Facets(r.Context())
	d := worklistData{Slides: slides, Facets: facets, F: map[string]string{}, Verdicts: []string{"HIGH_GRADE", "LOW_GRADE", "NILM", "INCOMPLETE", "UNSATISFACTORY"},
		States: []string{store.StateOpen, store.StatePending, store.StateSecond, store.StateSigned}}
	for _, k := range []string{"site", "robot", "verdict", "state", "from", "to"} {
		d.F[k] = q.Get(k)
	}
	d.F["state"] = f.State
	page := func(off int) string {
		v := url.Values{}
		for k, val := range d.F {
			if val != "" {
				v.Set(k, val)
			}
		}
		v.Set("offset", strconv.Itoa(off))
		return "/?" + v.Encode()
	}
	if len(slides) == f.Limit {
		d.Next = page(f.Offset + f.Limit)
	}
	if f.Offset > 0 {
		d.Prev = page(max(0, f.Offset-f.Limit))
	}
	s.render(w, r, http.StatusOK, "worklist", page0("Worklist", d))
}

func page0(title string, d any) page { return page{Title: title, Data: d} }

// report is the part of a result's body the slide page shows.
type report struct {
	Verdict       string   `json:"verdict"`
	Flags         []string `json:"flags"`
	Rerun         bool     `json:"rerun"`
	RerunReason   string   `json:"rerun_reason"`
	Magazine      string   `json:"magazine"`
	Slot          int      `json:"slot"`
	TilesPlanned  int      `json:"tiles_planned"`
	TilesCaptured int      `json:"tiles_captured"`
	TilesAnalysed int      `json:"tiles_analysed"`
	TilesMissing  int      `json:"tiles_missing"`
	Error         string   `json:"error"`
	Focus         struct {
		ErrorRMS float64 `json:"error_rms_um"`
		FitRMS   float64 `json:"fit_rms_um"`
		Points   int     `json:"points"`
		Failed   int     `json:"failed"`
	} `json:"focus"`
	Result struct {
		Cells          int            `json:"cells"`
		HighGradeCells int            `json:"high_grade_cells"`
		LowGradeCells  int            `json:"low_grade_cells"`
		Counts         map[string]int `json:"counts"`
		Reason         string         `json:"reason"`
		ModelVersion   string         `json:"model_version"`
		ModelSHA256    string         `json:"model_sha256"`
	} `json:"result"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

type hit struct {
	store.Image
	N          int
	Left, Top  float64 // % of the overview
	BarPx      float64 // 10 µm on screen
	OnOverview bool
	DisplayW   int
	DisplayH   int
}

type slideData struct {
	R               store.Result
	Rep             report
	Parsed          bool
	Complete        bool
	Overview        *store.Image
	Hits            []hit
	Reviews         []store.Review
	Audit           []store.AuditEntry
	Interpretations []string
	CanSign         bool
	SignKind        string
	Why             string
}

// cropDisplay is the on-screen size of a crop: an integer upscale to about
// 300 px, so chromatin is judged on whole pixels (no resampling blur).
const cropDisplay = 300

// load reads a result, its report and its images for the slide page and
// its stylesheet; it answers the request itself when it fails.
func (s *Server) load(w http.ResponseWriter, r *http.Request) (slideData, bool) {
	robot, id := r.PathValue("robot"), r.PathValue("result")
	res, err := s.st.Result(r.Context(), robot, id)
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "No such result.", nil)
		return slideData{}, false
	}
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The database is not reachable; try again.", err)
		return slideData{}, false
	}
	d := slideData{R: res, Interpretations: store.Interpretations}
	var env struct {
		Body report `json:"body"`
	}
	d.Parsed = json.Unmarshal(res.Envelope, &env) == nil
	d.Rep = env.Body
	d.Complete = d.Parsed && d.Rep.TilesMissing == 0 && d.Rep.TilesPlanned > 0 && res.Verdict != "INCOMPLETE"
	ims, err := s.st.Images(r.Context(), robot, id)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The database is not reachable; try again.", err)
		return slideData{}, false
	}
	for i := range ims {
		if ims[i].Role == "overview" && d.Overview == nil {
			d.Overview = &ims[i]
		}
	}
	n := 0
	for _, im := range ims {
		if im.Role != "crop" {
			continue
		}
		n++
		h := hit{Image: im, N: n}
		k := max(1, cropDisplay/max(im.Width, im.Height))
		h.DisplayW, h.DisplayH = im.Width*k, im.Height*k
		if im.PixelUM > 0 {
			h.BarPx = 10 / im.PixelUM * float64(k)
		}
		if o := d.Overview; o != nil && o.PixelUM > 0 {
			h.Left = (im.StageXUM - o.OriginXUM) / o.PixelUM / float64(o.Width) * 100
			h.Top = (im.StageYUM - o.OriginYUM) / o.PixelUM / float64(o.Height) * 100
			h.OnOverview = h.Left >= 0 && h.Left <= 100 && h.Top >= 0 && h.Top <= 100
		}
		d.Hits = append(d.Hits, h)
	}
	return d, true
}

// marks is the slide page's own stylesheet: where the hits sit on the
// overview and how long the 10 µm bars are (the CSP allows no inline
// styles).
func (s *Server) marks(w http.ResponseWriter, r *http.Request) {
	d, ok := s.load(w, r)
	if !ok {
		return
	}
	var b strings.Builder
	for _, h := range d.Hits {
		if h.OnOverview {
			b.WriteString("#m" + strconv.Itoa(h.N) + "{left:" + strconv.FormatFloat(h.Left, 'f', 2, 64) + "%;top:" + strconv.FormatFloat(h.Top, 'f', 2, 64) + "%}\n")
		}
		if h.BarPx > 0 {
			b.WriteString("#bar-" + strconv.Itoa(h.N) + "{width:" + strconv.FormatFloat(min(h.BarPx, float64(h.DisplayW)), 'f', 1, 64) + "px}\n")
		}
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=300")
	_, _ = w.Write([]byte(b.String()))
}

func (s *Server) slide(w http.ResponseWriter, r *http.Request) {
	d, ok := s.load(w, r)
	if !ok {
		return
	}
	robot, id, res := d.R.RobotID, d.R.ResultID, d.R
	d.Reviews, _ = s.st.Reviews(r.Context(), robot, id)
	d.Audit, _ = s.st.AuditLog(r.Context(), robot, id, 50)
	u := current(r)
	switch res.ReviewState {
	case store.StatePending:
		d.CanSign, d.SignKind = slices.Contains(signers, u.Role), "Sign out"
		if !d.CanSign {
			d.Why = "Only reviewers and supervisors sign out cases."
		}
	case store.StateSecond:
		d.SignKind = "Second review"
		d.CanSign = u.Role == store.RoleSupervisor && (len(d.Reviews) == 0 || d.Reviews[0].Reviewer != u.Username)
		if !d.CanSign {
			d.Why = "The reviewer disagreed with the robot: a supervisor other than the first reviewer signs the second review."
		}
	}
	s.render(w, r, http.StatusOK, "slide", page0("Slide "+res.SlideID, d))
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	u := current(r)
	robot, id := r.PathValue("robot"), r.PathValue("result")
	res, err := s.st.Result(r.Context(), robot, id)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "No such result.", nil)
		return
	}
	if res.ReviewState == store.StateSecond && u.Role != store.RoleSupervisor {
		s.fail(w, r, http.StatusForbidden, "The second review is a supervisor's.", nil)
		return
	}
	_, err = s.st.SignOut(r.Context(), store.Review{RobotID: robot, ResultID: id, Reviewer: u.Username, Role: u.Role,
		Interpretation: r.PostFormValue("interpretation"), Comment: r.PostFormValue("comment")})
	switch {
	case errors.Is(err, store.ErrReviewed), errors.Is(err, store.ErrSameReviewer):
		s.fail(w, r, http.StatusConflict, "Not signed: "+err.Error()+".", nil)
		return
	case err != nil && strings.Contains(err.Error(), "interpretation"):
		s.fail(w, r, http.StatusBadRequest, "Choose an interpretation.", nil)
		return
	case err != nil:
		s.fail(w, r, http.StatusServiceUnavailable, "Not signed: the database did not take it; try again.", err)
		return
	}
	http.Redirect(w, r, "/slide/"+url.PathEscape(robot)+"/"+url.PathEscape(id)+"#reviews", http.StatusSeeOther)
}

func (s *Server) image(w http.ResponseWriter, r *http.Request) {
	b, err := s.st.ImagePNG(r.Context(), r.PathValue("robot"), r.PathValue("image"))
	if errors.Is(err, store.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, "database not reachable", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/png")
	h.Set("Cache-Control", "private, max-age=604800, immutable") // an image ID never changes content
	_, _ = w.Write(b)
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	log, err := s.st.AuditLog(r.Context(), r.URL.Query().Get("robot"), r.URL.Query().Get("result"), 500)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The database is not reachable; try again.", err)
		return
	}
	s.render(w, r, http.StatusOK, "audit", page0("Audit log", log))
}

func (s *Server) users(w http.ResponseWriter, r *http.Request) {
	s.renderUsers(w, r, http.StatusOK, "")
}

func (s *Server) renderUsers(w http.ResponseWriter, r *http.Request, status int, flash string) {
	us, err := s.st.Users(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The database is not reachable; try again.", err)
		return
	}
	p := page0("Accounts", map[string]any{"Users": us, "Roles": []string{store.RoleReviewer, store.RoleSupervisor, store.RoleAdmin}})
	p.Flash = flash
	s.render(w, r, status, "users", p)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	h, err := HashPassword(r.PostFormValue("password"))
	if err != nil {
		s.renderUsers(w, r, http.StatusBadRequest, "Not created: "+strings.TrimPrefix(err.Error(), "review: ")+".")
		return
	}
	err = s.st.CreateUser(r.Context(), current(r).Username, store.User{Username: r.PostFormValue("username"), Role: r.PostFormValue("role"), PasswordHash: h})
	if err != nil {
		s.renderUsers(w, r, http.StatusBadRequest, "Not created: "+strings.TrimPrefix(err.Error(), "store: ")+".")
		return
	}
	http.Redirect(w, r, "/admin/users", http.StatusSeeOther)
}
