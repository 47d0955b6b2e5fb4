package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"papscan/classify"
	config "papscan/firmware-config"
)

func runConfig(_ context.Context, e env, args []string) int {
	fs := newFlags(e, "config", "config check FILE | config show [FILE|PROFILE] | config profiles",
		"check: validate a configuration file; exit 0 if valid, 3 with one line per problem (key path and allowed range) if not.\n"+
			"show: print the effective configuration (defaults filled in) of a file or a shipped profile.\n"+
			"profiles: list the shipped profiles.")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return exitUsage
	}
	switch rest[0] {
	case "check":
		if len(rest) != 2 {
			fmt.Fprintln(e.stderr, "papscan config check: want exactly one FILE")
			return exitUsage
		}
		cfg, err := config.Load(rest[1])
		if err != nil {
			fmt.Fprintf(e.stderr, "%v\n", err)
			return exitConfig
		}
		// What the agent refuses at start (files, state directory) is
		// refused here too.
		if err := cfg.CheckHost(); err != nil {
			var ve *config.ValidationError
			if errors.As(err, &ve) {
				ve.Source = rest[1]
			}
			fmt.Fprintf(e.stderr, "%v\n", err)
			return exitConfig
		}
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(e.stderr, "%s: warning: %s\n", rest[1], w)
		}
		fmt.Fprintf(e.stdout, "%s: ok\n", rest[1])
		return exitOK
	case "show":
		name := "sim"
		if len(rest) > 1 {
			name = rest[1]
		}
		cfg, code := loadConfigOrProfile(e, name)
		if cfg == nil {
			return code
		}
		b, err := cfg.Marshal()
		if err != nil {
			fmt.Fprintf(e.stderr, "papscan config show: %v\n", err)
			return exitFailure
		}
		e.stdout.Write(b)
		return exitOK
	case "profiles":
		fmt.Fprintln(e.stdout, strings.Join(config.Profiles(), "\n"))
		return exitOK
	}
	fmt.Fprintf(e.stderr, "papscan config: unknown action %q (want check, show or profiles)\n", rest[0])
	return exitUsage
}

// loadConfigOrProfile loads name as a file if one exists, else as a shipped
// profile. On failure it prints the problem and returns nil and the exit
// code.
func loadConfigOrProfile(e env, name string) (*config.Config, int) {
	var cfg *config.Config
	var err error
	if _, statErr := os.Stat(name); statErr == nil || strings.ContainsAny(name, "/.") {
		cfg, err = config.Load(name)
	} else {
		cfg, err = config.Profile(name)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "%v\n", err)
		return nil, exitConfig
	}
	return cfg, exitOK
}

func loadModel() (*classify.Model, error) { return classify.DefaultModel() }
