// Package fleet assembles the fleet side of papscan for one process:
// StartLocal runs the receiver (papscan/telemetry/fleet), the store
// (papscan/fleet/store, SQLite by default) and the review station
// (papscan/fleet/review), with the embedded MQTT broker unless brokers are
// given. `papscan-fleet local` is a thin wrapper; the robot's simulator can
// call it too (it lives outside the robot's binary: the robot never links
// the database or web code).
//
//	l, err := fleet.StartLocal(ctx, fleet.LocalOptions{Dir: stateDir, DemoAccount: true})
//	defer l.Close()
//	fmt.Println("review station:", l.URL, "user", l.User, "password", l.Password)
//
// DemoRobot builds what a simulated robot publishes (results, gallery
// crops, overview) for tests, the load generator and demonstrations.
package fleet
