package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"papscan/classify"
	"papscan/scan"
)

// The README's sample of `make run` is checked against the code that
// prints it: its table must be exactly what printTable prints for the
// reports of the run it was taken from (stored in testdata/readme-run, the
// fields the table shows), its model must be that run's and the shipped
// model, and its progress lines must have the progress bar's format.
//
// To take the sample from a new run (after a model or table change):
//
//	bin/papscan sim --state-dir /tmp/s   # copy its first lines into README.md
//	PAPSCAN_README_RUN=/tmp/s go test ./cmd/papscan -run TestReadmeSample
//
// which stores the run's reports and rewrites the README's table.

const readmeRunFile = "testdata/readme-run/reports.json"

// readmeRun is what the README's table is printed from.
type readmeRun struct {
	Reports []*scan.Report    `json:"reports"`
	Paths   map[string]string `json:"paths"` // result ID -> result.json as `make run` prints it
	// Timing marshals as seconds and has no decoder: the table's two
	// times are kept beside the reports, by result ID.
	Times map[string]readmeTimes `json:"times"`
}

type readmeTimes struct {
	Machine float64 `json:"machine_seconds"`
	Wall    float64 `json:"wall_seconds"`
}

// readmeSample returns the lines of the fenced block under "What `make
// run` shows" and the README's lines with the block's first line index.
func readmeSample(t *testing.T) (block []string, all []string, start int) {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	all = strings.Split(string(b), "\n")
	i := slices.IndexFunc(all, func(l string) bool { return strings.HasPrefix(l, "### What `make run` shows") })
	if i < 0 {
		t.Fatal("README.md: no section \"What `make run` shows\"")
	}
	for i < len(all) && all[i] != "```" {
		i++
	}
	j := i + 1
	for j < len(all) && all[j] != "```" {
		j++
	}
	if j >= len(all) {
		t.Fatal("README.md: no sample block under \"What `make run` shows\"")
	}
	return all[i+1 : j], all, i + 1
}

// tableLines returns the index range of printTable's output in block: the
// SLOT header through the HIGH*/ABN* note.
func tableLines(t *testing.T, block []string) (int, int) {
	t.Helper()
	i := slices.IndexFunc(block, func(l string) bool { return strings.HasPrefix(l, "SLOT ") })
	j := slices.IndexFunc(block, func(l string) bool { return strings.HasPrefix(l, "HIGH*/ABN*:") })
	if i < 0 || j < i {
		t.Fatalf("README sample: no table (a SLOT header line through the HIGH*/ABN* note):\n%s", strings.Join(block, "\n"))
	}
	return i, j + 1
}

func TestReadmeSample(t *testing.T) {
	if dir := os.Getenv("PAPSCAN_README_RUN"); dir != "" {
		storeReadmeRun(t, dir)
	}
	b, err := os.ReadFile(readmeRunFile)
	if err != nil {
		t.Fatal(err)
	}
	var run readmeRun
	if err := json.Unmarshal(b, &run); err != nil {
		t.Fatalf("%s: %v", readmeRunFile, err)
	}
	if len(run.Reports) == 0 {
		t.Fatalf("%s: no reports", readmeRunFile)
	}
	for _, r := range run.Reports {
		tm := run.Times[r.ResultID]
		r.Timing.Machine = time.Duration(tm.Machine * float64(time.Second))
		r.Timing.Wall = time.Duration(tm.Wall * float64(time.Second))
	}
	var buf bytes.Buffer
	printTable(&buf, run.Reports, run.Paths)
	want := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")

	block, all, start := readmeSample(t)
	i, j := tableLines(t, block)
	if os.Getenv("PAPSCAN_README_RUN") != "" {
		out := slices.Concat(all[:start+i], want, all[start+j:])
		if err := os.WriteFile("../../README.md", []byte(strings.Join(out, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		block, _, _ = readmeSample(t)
		i, j = tableLines(t, block)
	}
	if got := block[i:j]; !slices.Equal(got, want) {
		t.Errorf("README's table is not what printTable prints for %s (regenerate, see this test's doc):\ngot:\n%s\nwant:\n%s",
			readmeRunFile, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The first line names the run's model, which must be the shipped one.
	version := run.Reports[0].Result.ModelVersion
	if !strings.Contains(block[0], "model "+version) {
		t.Errorf("README sample's first line %q does not name the run's model %s", block[0], version)
	}
	m, err := classify.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != version {
		t.Errorf("README sample was taken with model %s, the shipped model is %s: take it from a new run (see this test's doc)", version, m.Version)
	}

	// Progress lines have the bar's format and phases.
	bar := regexp.MustCompile(`^M[0-9]{4}-S[0-9]{2} +(load|label|spot|focus|scan|unload|done) +( \[[#.]{30}\] [0-9]+/[0-9]+)? +[0-9]+\.[0-9]s$`)
	n := 0
	for _, l := range block[:i] {
		if strings.HasPrefix(l, "M0") {
			n++
			if !bar.MatchString(l) {
				t.Errorf("README progress line %q is not in the progress bar's format", l)
			}
		}
	}
	if n == 0 {
		t.Error("README sample shows no progress line")
	}
}

// storeReadmeRun keeps, of the reports a `papscan sim` run stored in
// stateDir, the fields the table prints, in readmeRunFile.
func storeReadmeRun(t *testing.T, stateDir string) {
	files, err := filepath.Glob(filepath.Join(stateDir, "slides", "*", "*", "result.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("PAPSCAN_README_RUN=%s: no slides/*/*/result.json (%v)", stateDir, err)
	}
	run := readmeRun{Paths: map[string]string{}, Times: map[string]readmeTimes{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r scan.Report
		var tm struct {
			Timing readmeTimes `json:"timing"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := json.Unmarshal(b, &tm); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		run.Times[r.ResultID] = tm.Timing
		k := &scan.Report{Slot: r.Slot, SlideID: r.SlideID, ResultID: r.ResultID, Verdict: r.Verdict, Flags: r.Flags, Rerun: r.Rerun,
			TilesAnalysed: r.TilesAnalysed, TilesPlanned: r.TilesPlanned, Measures: r.Measures}
		k.Result.Cells, k.Result.SlideHighGradeCells, k.Result.SlideAbnormalCells = r.Result.Cells, r.Result.SlideHighGradeCells, r.Result.SlideAbnormalCells
		k.Result.ModelVersion, k.Result.Thresholds.Rule = r.Result.ModelVersion, r.Result.Thresholds.Rule
		run.Reports = append(run.Reports, k)
		// As `make run` (state directory papscan-state) prints it.
		run.Paths[r.ResultID] = filepath.Join("papscan-state", "slides", r.SlideID, r.ResultID, "result.json")
	}
	slices.SortFunc(run.Reports, func(a, b *scan.Report) int { return cmp.Compare(a.Slot, b.Slot) })
	b, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(readmeRunFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(readmeRunFile, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
