// Package delivery is the robot's one path of results and events to the
// fleet. Link holds the durable outbox in the state directory
// (telemetry/outbox), its sender, the MQTT client (telemetry) and the
// health loop; Delivery stores each slide's files, commits its result,
// then its images (each gallery crop at full resolution and the overview,
// telemetry.ImageMessage, keyed by image_id), and every event to the
// outbox before it returns, and the sender publishes them until the fleet
// acks them. The image messages are also kept beside the result.json
// (outbox.StoreImages), so that after outbox damage Link's Open commits
// the images again with the results (outbox.Rederive). Images never use the disk room kept for results (an image
// that would is skipped, logged; the slide's files keep it). A full or failing disk is a storage
// fault (hal.FaultStorage) and refuses the next slide (Admit).
//
// The agent (papscan/agent, through agent.Delivery) and `papscan sim` both
// deliver through it:
//
//	lk, err := delivery.Open(ctx, cfg, brokers, log)
//	defer lk.Close(ctx)
//	d := &delivery.Delivery{StateDir: cfg.Agent.StateDir, Link: lk, Log: log}
//	err = d.Deliver(ctx, report)
package delivery
