// Package integration holds the fleet side's system tests against real
// components the tests start themselves: Mosquitto (Debian package
// mosquitto) and PostgreSQL (Debian package postgresql, papscan/fleet/pgtest).
// The load test runs 200 simulated robots into three receiver processes
// sharing one MQTT subscription, kills one receiver and the database
// connections mid-stream and checks every result and image is stored
// exactly once and acked; the site test bridges a site Mosquitto to a
// central one, cuts the bridge and restores it. Without the binaries the
// tests skip locally and fail in CI (CI set).
package integration
