package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"papscan/agent"
)

// Exit code of status/selftest/jog when no agent answers on the socket.
const exitNoAgent = 5

func queryAgent(ctx context.Context, e env, socket string, req agent.Request, timeout time.Duration) (agent.Response, int) {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := agent.Query(qctx, socket, req)
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan %s: %v\n", req.Cmd, err)
		if errors.Is(err, agent.ErrNoAgent) {
			fmt.Fprintln(e.stderr, "is the service running? (systemctl status papscan; or start `papscan agent --sim`)")
			return resp, exitNoAgent
		}
		return resp, exitFailure
	}
	return resp, exitOK
}

func runStatus(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "status", "status [--json] [--socket PATH]",
		"Show the running agent's state: current slide and progress, faults, results waiting for the broker,\n"+
			"broker connection, slides to rerun. Exit 0 when the agent answers and has no latched fault, 4 with\n"+
			"a fault, 5 when no agent answers.")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	sock := socketFlag(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	resp, code := queryAgent(ctx, e, socketPath(*sock), agent.Request{Cmd: "status"}, 10*time.Second)
	if code != exitOK {
		return code
	}
	if resp.Status == nil {
		fmt.Fprintf(e.stderr, "papscan status: %s\n", resp.Error)
		return exitFailure
	}
	if *asJSON {
		b, _ := json.MarshalIndent(resp.Status, "", "  ")
		fmt.Fprintf(e.stdout, "%s\n", b)
	} else {
		resp.Status.WriteHuman(e.stdout)
	}
	if resp.Status.Fault != nil {
		return exitFault
	}
	return exitOK
}

func runSelftest(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "selftest", "selftest [--socket PATH]",
		"Ask the running agent to re-home and run the hardware self-test (home repeatability, focus on\n"+
			"the reference target, camera, illumination; refused while scanning) and print each check.\n"+
			"Exit 0 when it passed, 4 when it failed (fault code 8 is latched and shown on the LEDs).")
	sock := socketFlag(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	resp, code := queryAgent(ctx, e, socketPath(*sock), agent.Request{Cmd: "selftest"}, 6*time.Minute)
	if code != exitOK {
		return code
	}
	if resp.Status != nil && resp.Status.SelfTest != nil && resp.Code == "" {
		for _, c := range resp.Status.SelfTest.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(e.stdout, "%s %-19s %s\n", mark, c.Name, c.Detail)
		}
	}
	if !resp.OK {
		fmt.Fprintf(e.stderr, "papscan selftest: %s\n", resp.Error)
		if strings.Contains(resp.Error, "refused") {
			return exitFailure
		}
		return exitFault
	}
	fmt.Fprintln(e.stdout, "self-check passed")
	return exitOK
}

func runJog(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "jog", "jog AXIS DISTANCE [--socket PATH]",
		"For service engineers: move one axis (x, y or z) of the homed robot by DISTANCE (signed, with a\n"+
			"unit: 100um, -0.5mm) through the running agent. Refused while scanning, with a latched fault,\n"+
			"before homing and outside the configured travel.")
	sock := socketFlag(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return exitUsage
	}
	um, err := parseMicrometres(fs.Arg(1))
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan jog: %v\n", err)
		return exitUsage
	}
	resp, code := queryAgent(ctx, e, socketPath(*sock), agent.Request{Cmd: "jog", Axis: fs.Arg(0), UM: um}, time.Minute)
	if code != exitOK {
		return code
	}
	if !resp.OK {
		fmt.Fprintf(e.stderr, "papscan jog: %s\n", resp.Error)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "jogged %s by %gµm\n", fs.Arg(0), um)
	return exitOK
}

// parseMicrometres reads a signed distance with a unit: um, µm, mm.
func parseMicrometres(s string) (float64, error) {
	for _, u := range []struct {
		suffix string
		scale  float64
	}{{"um", 1}, {"µm", 1}, {"mm", 1000}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f != f || f > 1e6 || f < -1e6 {
				return 0, fmt.Errorf("distance %q: want a number with a unit, e.g. 100um or -0.5mm", s)
			}
			return f * u.scale, nil
		}
	}
	return 0, fmt.Errorf("distance %q: want a unit (um or mm), e.g. 100um or -0.5mm", s)
}

// socketFlag defines --socket, the running agent's status socket, on the
// clients' flag sets (status, selftest, jog).
func socketFlag(fs *flag.FlagSet) *string {
	return fs.String("socket", "", "the agent's status socket (default $PAPSCAN_SOCKET, else "+defaultSocket+")")
}
