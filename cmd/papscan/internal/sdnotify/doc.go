// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)): datagrams such as "READY=1", "STATUS=...", "WATCHDOG=1" and
// "STOPPING=1" sent to the unix socket named by $NOTIFY_SOCKET, and the
// watchdog interval from $WATCHDOG_USEC / $WATCHDOG_PID. Without
// $NOTIFY_SOCKET every call is a no-op, so the agent runs the same outside
// systemd. It is small enough that the go-systemd dependency is not worth it.
package sdnotify
