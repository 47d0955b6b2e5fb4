// Package remote is the agent as the fleet drives and sees it: the
// fleet's signed commands (package telemetry/command: start, pause,
// resume, abort, status, self-test, log level, reload, fetch) run on the
// agent through agent.Agent.Do, the same path as the status socket and
// the panel's buttons, with their replies and audit records sent through
// the delivery link; and the agent's part of the health message (Health).
//
// The daemon wires it:
//
//	cmds, err := remote.Open(cfg, version, log)
//	lk, err := delivery.OpenWith(ctx, cfg, brokers, log, func(o *telemetry.Options) {
//		o.Subscriptions = append(o.Subscriptions, cmds.Subscription())
//	})
//	ag, err := agent.New(opts)
//	lk.SetHealth(remote.Health(ag))
//	cmds.Start(ag, lk)
//	err = ag.Run(ctx)
//	cmds.Stop() // before the link closes
package remote
