package config

import (
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"periph.io/x/conn/v3/physic"

	"papscan/hal/ticaxis/ticspec"
)

// TestProfileCommentsFollowTicFacts: the shipped profiles document each
// Tic model's current maximum and the step rate limit in comments; they
// must say what hal/ticaxis/ticspec (and so the validator and the driver)
// hold.
func TestProfileCommentsFollowTicFacts(t *testing.T) {
	current := regexp.MustCompile(`(T500|T834|T825|T249|36v4) ([0-9]+)mA`)
	rate := regexp.MustCompile(`<= ([0-9,]+) microsteps/s`)
	files, err := fs.Glob(profileFS, "profiles/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("profiles: %v %v", files, err)
	}
	seen := 0
	for _, f := range files {
		b, err := fs.ReadFile(profileFS, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range current.FindAllSubmatch(b, -1) {
			v, ok := ticspec.Lookup(string(m[1]))
			mA, _ := strconv.Atoi(string(m[2]))
			if !ok || physic.ElectricCurrent(mA)*physic.MilliAmpere != v.MaxCurrent {
				t.Errorf("%s: %q, but ticspec's %s maximum is %s", f, m[0], m[1], v.MaxCurrent)
			}
			seen++
		}
		for _, m := range rate.FindAllSubmatch(b, -1) {
			n, _ := strconv.Atoi(strings.ReplaceAll(string(m[1]), ",", ""))
			if n != ticspec.MaxStepsPerSecond {
				t.Errorf("%s: %q, but the Tic's limit is %d microsteps/s", f, m[0], ticspec.MaxStepsPerSecond)
			}
		}
	}
	if seen == 0 {
		t.Error("no profile documents the Tic current maxima")
	}
}
