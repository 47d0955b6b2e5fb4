// The import rules of DEVELOPERS.md ("Dependencies point one way"),
// enforced: a package that reaches a forbidden one, directly or through
// others, fails this test (in the spirit of tailscale's depaware and
// per-package deps tests). Test files are not counted; `go list` gives
// each package's transitive non-test dependencies.
package papscan_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "papscan"

// depRule forbids the packages matched by Pkgs (and not by Except) to
// depend on any package of the module matched by Forbid (and not by
// Allow), or on any package outside it (standard library, modules) matched
// by ForbidOutside, a full import path or "x/..." pattern.
type depRule struct {
	Why           string
	Pkgs, Except  []string
	Forbid, Allow []string
	ForbidOutside []string
}

// rules are the import rules. A pattern is a package path relative to the
// module; "x/..." matches x and everything below it.
var rules = []depRule{
	{
		Why:    "firmware-config is a leaf: it knows no other papscan package but the Tic's fact table, which its validator checks against",
		Pkgs:   []string{"firmware-config/..."},
		Forbid: []string{"..."},
		Allow:  []string{"hal/ticaxis/ticspec"},
	},
	{
		Why:    "hal/ticaxis/ticspec holds the Tic's facts for the validator, the driver, the assembly point and the emulator: a leaf",
		Pkgs:   []string{"hal/ticaxis/ticspec"},
		Forbid: []string{"..."},
	},
	{
		Why:    "hal and its drivers take their own options: only the assembly point (robot) maps the configuration onto them; they know nothing of scanning, classifying, telemetry or the agent",
		Pkgs:   []string{"hal/..."},
		Except: []string{"hal/sim/..."},
		Forbid: []string{"firmware-config/...", "scan/...", "classify/...", "telemetry/...", "robot/...", "agent/...", "cmd/..."},
	},
	{
		Why:    "the simulation sits below the drivers: it may read the configuration (the simulated world is built from it) but knows nothing above hal",
		Pkgs:   []string{"hal/sim/..."},
		Forbid: []string{"scan/...", "classify/...", "telemetry/...", "robot/...", "agent/...", "cmd/..."},
	},
	{
		Why:    "scan sees only hal interfaces, never a concrete driver, the configuration or telemetry",
		Pkgs:   []string{"scan/..."},
		Forbid: []string{"hal/...", "firmware-config/...", "telemetry/...", "robot/...", "agent/...", "cmd/..."},
		Allow:  []string{"hal"},
	},
	{
		Why:           "scan produces data; drawing and encoding images (PNG, fonts) is package render's",
		Pkgs:          []string{"scan/..."},
		ForbidOutside: []string{"image/png", "image/jpeg", "image/gif", "golang.org/x/image/..."},
	},
	{
		Why:    "render draws a report's images: it knows scan's and classify's data, not hardware, the configuration, telemetry or the agent",
		Pkgs:   []string{"render/..."},
		Forbid: []string{"hal/...", "firmware-config/...", "telemetry/...", "robot/...", "agent/...", "delivery/...", "cmd/..."},
		Allow:  []string{"hal"},
	},
	{
		Why:    "classify knows images, not hardware, scanning or telemetry",
		Pkgs:   []string{"classify/..."},
		Forbid: []string{"hal/...", "scan/...", "telemetry/...", "firmware-config/...", "robot/...", "agent/...", "cmd/..."},
	},
	{
		Why:    "telemetry knows MQTT, not motors: no hal driver, no assembly point",
		Pkgs:   []string{"telemetry/..."},
		Forbid: []string{"hal/...", "robot/...", "agent/...", "cmd/..."},
		Allow:  []string{"hal", "hal/ticaxis/ticspec"}, // ticspec: through firmware-config
	},
	{
		Why:    "the assembly point opens hardware: it knows nothing of scanning, classifying or telemetry",
		Pkgs:   []string{"robot/..."},
		Forbid: []string{"scan/...", "classify/...", "render/...", "telemetry/...", "agent/...", "cmd/..."},
	},
	{
		Why:    "the agent drives the robot through hal interfaces and the panel's LED language, never a concrete driver, the assembly point or MQTT (delivery is an interface)",
		Pkgs:   []string{"agent/..."},
		Forbid: []string{"hal/...", "robot/...", "telemetry/...", "cmd/..."},
		Allow:  []string{"hal", "hal/panel", "hal/ticaxis/ticspec"}, // ticspec: through firmware-config
	},
	{
		Why:    "delivery stores results and events and sends them over MQTT: no hal driver, assembly point or agent",
		Pkgs:   []string{"delivery/..."},
		Forbid: []string{"hal/...", "robot/...", "agent/...", "cmd/..."},
		Allow:  []string{"hal", "hal/ticaxis/ticspec"}, // ticspec: through firmware-config
	},
	{
		Why:    "remote runs the fleet's commands on the agent and reports its health: no hal driver or assembly point",
		Pkgs:   []string{"remote/..."},
		Forbid: []string{"hal/...", "robot/...", "cmd/..."},
		Allow:  []string{"hal", "hal/panel", "hal/ticaxis/ticspec"},
	},
	{
		Why:    "cmd/ wires: nothing outside it depends on it",
		Pkgs:   []string{"..."},
		Except: []string{"cmd/..."},
		Forbid: []string{"cmd/..."},
	},
}

// match reports whether the module-relative path p matches pattern.
func match(pattern, p string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return p == base || strings.HasPrefix(p, base+"/")
	}
	return p == pattern
}

func matchAny(patterns []string, p string) bool {
	return slices.ContainsFunc(patterns, func(pat string) bool { return match(pat, p) })
}

// violations checks deps (module-relative package -> its module-relative
// transitive dependencies) and outside (module-relative package -> its
// transitive dependencies outside the module) against rules.
func violations(deps, outside map[string][]string, rules []depRule) []string {
	var out []string
	for pkg, ds := range deps {
		for _, r := range rules {
			if !matchAny(r.Pkgs, pkg) || matchAny(r.Except, pkg) {
				continue
			}
			for _, d := range ds {
				if matchAny(r.Forbid, d) && !matchAny(r.Allow, d) {
					out = append(out, fmt.Sprintf("%s depends on %s: %s", pkg, d, r.Why))
				}
			}
			for _, d := range outside[pkg] {
				if matchAny(r.ForbidOutside, d) {
					out = append(out, fmt.Sprintf("%s depends on %s: %s", pkg, d, r.Why))
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// moduleDeps lists every package of the module with its transitive
// dependencies inside the module (deps) and outside it (outside).
func moduleDeps(t *testing.T) (deps, outside map[string][]string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(goTool, "list", "-e", "-json=ImportPath,Deps,Error", "./...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	rel := func(p string) (string, bool) {
		if p == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(p, module+"/")
		return r, ok
	}
	deps, outside = map[string][]string{}, map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Deps       []string
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Error != nil {
			t.Fatalf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		pkg, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		var ds, ext []string
		for _, d := range p.Deps {
			if r, ok := rel(d); ok {
				ds = append(ds, r)
			} else {
				ext = append(ext, d)
			}
		}
		deps[pkg], outside[pkg] = ds, ext
	}
	return deps, outside
}

func TestImportRules(t *testing.T) {
	deps, outside := moduleDeps(t)
	for _, must := range []string{"firmware-config", "hal", "scan", "classify", "render", "telemetry", "robot", "agent", "delivery", "remote", "cmd/papscan"} {
		if _, ok := deps[must]; !ok {
			t.Fatalf("go list did not list %s (listed %d packages)", must, len(deps))
		}
	}
	for _, v := range violations(deps, outside, rules) {
		t.Error(v)
	}
}

// TestImportRulesCatchViolations: the checker fails on a broken rule,
// through a transitive dependency too.
func TestImportRulesCatchViolations(t *testing.T) {
	deps := map[string][]string{
		"firmware-config":     {"hal", "hal/ticaxis/ticspec"},
		"hal/ticaxis/ticspec": {"hal"},
		"hal/pins":            {"firmware-config"},
		"scan":                {"hal", "hal/ticaxis"},
		"classify":            {},
		"telemetry":           {"scan", "hal", "classify"},
		"hal/sim/world":       {"firmware-config", "hal/ticaxis"},
		"robot":               {"hal/sim/world", "firmware-config", "scan"},
		"render":              {"scan", "classify", "hal"},
	}
	outside := map[string][]string{
		"scan":   {"image", "image/draw", "image/png"},
		"render": {"image/png", "golang.org/x/image/font"},
	}
	got := violations(deps, outside, rules)
	want := []string{"firmware-config depends on hal", "hal/pins depends on firmware-config", "hal/ticaxis/ticspec depends on hal", "robot depends on scan", "scan depends on hal/ticaxis", "scan depends on image/png"}
	if len(got) != len(want) {
		t.Fatalf("violations:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w+":") {
			t.Errorf("violation %d = %q, want %q", i, got[i], w)
		}
	}
}
