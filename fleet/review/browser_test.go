package review_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds the Debian chromium binary; without it the browser test
// skips (fails in CI, where scripts/deps.txt installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not installed (Debian package chromium, scripts/deps.txt)")
	}
	t.Skip("chromium not installed")
	return ""
}

// TestBrowser drives the review station in headless Chromium: log in, the
// worklist, a slide, sign it out, the audit entry; a reviewer cannot open
// the admin pages; a form posted without its CSRF token is refused.
// PAPSCAN_REVIEW_SCREENSHOTS=dir saves the worklist and slide pages as
// PNG there (docs/review).
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := chromium(t)
	f := newFixture(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1360, 900),
	)
	// The whole browser session is bounded (a hung Chromium fails the test
	// instead of the package's timeout).
	bctx, bcancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer bcancel()
	actx, cancel := chromedp.NewExecAllocator(bctx, opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	shots := os.Getenv("PAPSCAN_REVIEW_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	do := func(what string, acts ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, acts...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	shot := func() []byte {
		t.Helper()
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		return b
	}
	eval := func(js string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	do("log in",
		chromedp.Navigate(f.ts.URL+"/"),
		chromedp.WaitVisible(`input[name=username]`),
		chromedp.SendKeys(`input[name=username]`, "sue"),
		chromedp.SendKeys(`input[name=password]`, password("sue")),
		chromedp.Click(`form.login button`),
		chromedp.WaitVisible(`table.worklist`),
	)
	if row := text(`table.worklist tbody tr`); !strings.Contains(row, "HIGH_GRADE") || !strings.Contains(row, "DEMO-0001A") {
		t.Fatalf("first worklist row %q, want the HIGH_GRADE slide", row)
	}
	worklistPNG := shot()
	do("open the slide",
		chromedp.Click(`table.worklist tbody tr a`),
		chromedp.WaitVisible(`ol.gallery`),
		chromedp.WaitVisible(`.overview img`),
	)
	// Lazy images: scroll through so they load, then back to the top.
	for range 50 {
		eval(`window.scrollBy(0, 400); true`)
		if eval(`Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)`) {
			break
		}
		do("wait", chromedp.Sleep(100*time.Millisecond)) // page loading images, not a timed assertion
	}
	if !eval(`Array.from(document.querySelectorAll('ol.gallery img')).filter(i => i.naturalWidth > 0).length >= 6`) {
		t.Error("gallery images did not load")
	}
	eval(`window.scrollTo(0, 0); true`)
	slidePNG := shot()
	do("sign out",
		chromedp.Click(`input[name=interpretation][value="HSIL"]`),
		chromedp.SendKeys(`textarea[name=comment]`, "Hyperchromatic nuclei, coarse chromatin; agree."),
		chromedp.Click(`form.signout button`),
		chromedp.WaitVisible(`#reviews`),
	)
	if a := text(`ul.audit`); !strings.Contains(a, "sue sign_out") || !strings.Contains(a, "primary review: HSIL (robot HIGH_GRADE)") {
		t.Fatalf("audit after sign-out: %q", a)
	}
	do("audit log", chromedp.Navigate(f.ts.URL+"/audit"), chromedp.WaitVisible(`table`))
	if a := text(`table`); !strings.Contains(a, "sign_out") || !strings.Contains(a, "login") {
		t.Fatalf("audit page: %q", a)
	}
	// CSRF: the next slide's form without its token is refused.
	do("post without CSRF",
		chromedp.Navigate(f.ts.URL+"/"),
		chromedp.Click(`table.worklist tbody tr:nth-child(2) a`),
		chromedp.WaitVisible(`form.signout`),
	)
	eval(`document.querySelector('form.signout input[name=csrf]').remove(); true`)
	do("submit without CSRF",
		chromedp.Click(`input[name=interpretation][value="LSIL"]`),
		chromedp.Click(`form.signout button`),
		chromedp.WaitVisible(`p.flash`),
	)
	if msg := text(`p.flash`); !strings.Contains(msg, "CSRF") {
		t.Fatalf("post without CSRF: %q", msg)
	}
	// A reviewer cannot reach the admin pages.
	do("log out and in as a reviewer",
		chromedp.Navigate(f.ts.URL+"/"),
		chromedp.Click(`form.who button`),
		chromedp.WaitVisible(`input[name=username]`),
		chromedp.SendKeys(`input[name=username]`, "ann"),
		chromedp.SendKeys(`input[name=password]`, password("ann")),
		chromedp.Click(`form.login button`),
		chromedp.WaitVisible(`table.worklist`),
	)
	if nav := text(`header.top`); strings.Contains(nav, "Accounts") || !strings.Contains(nav, "ann") {
		t.Errorf("the reviewer's navigation: %q", nav)
	}
	do("admin page as a reviewer", chromedp.Navigate(f.ts.URL+"/admin/users"), chromedp.WaitVisible(`p.flash`))
	if msg := text(`p.flash`); !strings.Contains(msg, "may not open this page") {
		t.Fatalf("reviewer on /admin/users: %q", msg)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"worklist.png": worklistPNG, "slide.png": slidePNG} {
		if len(b) < 1000 || !strings.HasPrefix(string(b), "\x89PNG") {
			t.Fatalf("%s: not a PNG screenshot (%d bytes)", name, len(b))
		}
		if err := os.WriteFile(filepath.Join(shots, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
