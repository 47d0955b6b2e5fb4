// Command papscan is the agent of the slide-scanning robot: one binary with
// subcommands for the service on real hardware, the whole robot in
// simulation, and the tools around them. Run `papscan help` for the list.
//
// Exit codes:
//
//	0  success
//	1  runtime failure (I/O, telemetry, a slide result that could not be stored)
//	2  usage error (unknown subcommand or flag)
//	3  configuration invalid (the message names the key)
//	4  hardware fault (motion, camera, loader); the robot is halted
//	5  no agent answers on the status socket (status, selftest, jog)
//	130  `papscan sim` interrupted (Ctrl-C): what was stored is delivered first
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

// Exit codes, documented in the package comment and the README.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitConfig  = 3
	exitFault   = 4
	// exitInterrupted: stopped by Ctrl-C (SIGINT), as shells report it.
	exitInterrupted = 130
)

// version is set at link time: -ldflags "-X main.version=...".
var version = "dev"

// env is what a subcommand gets from the outside world.
type env struct {
	stdout, stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) int
}

func commands() []command {
	return []command{
		{"sim", "run the whole robot on simulated hardware (scans a simulated magazine)", runSim},
		{"run", "alias of `agent` on the real hardware (one wiring; for running it by hand)", runRun},
		{"agent", "run as the robot's service (systemd Type=notify; --sim for the simulated robot)", runAgent},
		{"status", "show the running agent's state (slide, progress, faults, outbox, broker)", runStatus},
		{"selftest", "ask the running agent to re-home and run the hardware self-check", runSelftest},
		{"jog", "move one axis through the running agent (service engineers; refused while scanning)", runJog},
		{"config", "check or print a configuration (config check FILE | config show [FILE|PROFILE])", runConfig},
		{"eval", "measure the cell model and detector on labelled data (eval --data DIR [--json])", runEval},
		{"version", "print the version, the build and the classifier model", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, env{stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "papscan %s: slide-scanning robot agent\n\nUsage: papscan <command> [flags]\n\nCommands:\n", version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'papscan <command> --help' for a command's flags.\n")
	fmt.Fprintf(w, "Exit codes: 0 ok, 1 failure, 2 usage, 3 config invalid, 4 hardware fault, 5 no agent.\n")
}

func dispatch(ctx context.Context, e env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(e.stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "papscan: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return exitUsage
}

// newFlags returns a flag set that prints its usage to e.stderr with a
// description line.
func newFlags(e env, name, synopsis, desc string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: papscan %s\n\n%s\n\nFlags:\n", synopsis, desc)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; it returns an exit code and false when the caller
// should return (help asked for, or a usage error).
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

func runVersion(_ context.Context, e env, args []string) int {
	fs := newFlags(e, "version", "version", "Print the version, the Go toolchain, the VCS revision and the classifier model.")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	rev := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	fmt.Fprintf(e.stdout, "papscan %s (%s, %s/%s, revision %s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, rev)
	if m, err := loadModel(); err == nil {
		fmt.Fprintf(e.stdout, "model %s sha256:%s\n", m.Version, m.SHA256)
	} else {
		fmt.Fprintf(e.stdout, "model: %v\n", err)
	}
	return exitOK
}
