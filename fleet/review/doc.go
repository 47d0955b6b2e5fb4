// Package review is the review station (papscan-fleet serve): a
// server-rendered web application (net/http, html/template, one small CSS
// file, no scripts, no front-end build) over papscan/fleet/store.
//
// A reviewer logs in, works down the worklist (HIGH_GRADE first, then
// LOW_GRADE, then the rest, each by top cell score; filters by site,
// robot, date, verdict and review state), opens a slide (gallery crops at
// full resolution upscaled by whole pixels, each with score, class and
// stage position; the overview with the hits numbered; the scan's
// measures; previous reviews; the slide's audit entries) and signs it out
// with an interpretation (NILM, ASC-US, LSIL, ASC-H, HSIL, SCC,
// unsatisfactory) and a comment. A sign-out that disagrees with the
// robot's verdict waits for a second review by a supervisor.
//
// Accounts have roles (reviewer, supervisor, admin); passwords are hashed
// with argon2id; sessions live in the database behind a random token in a
// Secure, HttpOnly, SameSite=Strict cookie; every POST carries a
// per-session CSRF token (the login form a double-submit cookie); failed
// logins are rate-limited per client address and per user name; every
// response carries a strict Content-Security-Policy.
//
//	srv, err := review.New(review.Options{Store: st, Logger: log})
//	http.ListenAndServe(addr, srv)
package review
