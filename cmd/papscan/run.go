package main

import (
	"context"
	"fmt"
	"slices"
)

// runRun is `papscan run`: the same agent as `papscan agent` (the
// systemd service) on the real hardware, kept as a name for running it by
// hand. There is one hardware path: flags, behaviour and exit codes are
// the agent's.
func runRun(ctx context.Context, e env, args []string) int {
	if slices.Contains(args, "--sim") || slices.Contains(args, "-sim") {
		fmt.Fprintln(e.stderr, "papscan run: the real robot only; use `papscan agent --sim` or `papscan sim` for the simulated one")
		return exitUsage
	}
	return agentMain(ctx, e, "run", args)
}
