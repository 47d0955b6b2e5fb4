// Package integration holds papscan telemetry's fault tests against a real
// Mosquitto (Debian package mosquitto, started by the tests on a free
// loopback port): broker killed while results are produced, the robot
// process SIGKILLed, a full disk, a network blackhole and reset through a
// proxy, TLS with client certificates and broker failover, and the
// delivery benchmarks. Without mosquitto the tests skip locally and fail in
// CI (CI set).
package integration
