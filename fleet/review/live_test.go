package review_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestLiveScreenshots looks at a running review station (the one `make
// run` ends with) in headless Chromium: PAPSCAN_REVIEW_URL,
// PAPSCAN_REVIEW_USER and PAPSCAN_REVIEW_PASSWORD say where and who; the
// worklist and the first slide's page are saved as worklist.png and
// slide.png in PAPSCAN_REVIEW_SCREENSHOTS (default the test's temporary
// directory). It checks that the worklist holds slides and that the
// slide's gallery images load. Skipped without PAPSCAN_REVIEW_URL.
func TestLiveScreenshots(t *testing.T) {
	u := os.Getenv("PAPSCAN_REVIEW_URL")
	if u == "" {
		t.Skip("PAPSCAN_REVIEW_URL not set (a running review station, e.g. from make run)")
	}
	bin := chromium(t)
	shots := os.Getenv("PAPSCAN_REVIEW_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000),
	)
	bctx, bcancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer bcancel()
	actx, cancel := chromedp.NewExecAllocator(bctx, opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	do := func(what string, acts ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, acts...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(js string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	save := func(name string) {
		t.Helper()
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	do("log in",
		chromedp.Navigate(u),
		chromedp.WaitVisible(`input[name=username]`),
		chromedp.SendKeys(`input[name=username]`, os.Getenv("PAPSCAN_REVIEW_USER")),
		chromedp.SendKeys(`input[name=password]`, os.Getenv("PAPSCAN_REVIEW_PASSWORD")),
		chromedp.Click(`form.login button`),
		chromedp.WaitVisible(`table.worklist`),
	)
	save("worklist.png")
	do("open the first slide",
		chromedp.Click(`table.worklist tbody tr a`),
		chromedp.WaitVisible(`ol.gallery`),
	)
	for range 50 {
		eval(`window.scrollBy(0, 400); true`)
		if eval(`Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)`) {
			break
		}
		do("wait", chromedp.Sleep(100*time.Millisecond)) // page loading images, not a timed assertion
	}
	if !eval(`Array.from(document.querySelectorAll('ol.gallery img')).filter(i => i.naturalWidth > 0).length >= 1`) {
		t.Error("no gallery image loaded")
	}
	eval(`window.scrollTo(0, 0); true`)
	save("slide.png")
}
