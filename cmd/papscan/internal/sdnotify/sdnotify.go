package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Notifier sends notifications to the service manager.
type Notifier struct {
	addr string // "" when not running under a notifying manager

	mu   sync.Mutex
	conn *net.UnixConn
}

// New returns a Notifier for the socket in the value of $NOTIFY_SOCKET:
// a path, or an abstract socket when it starts with '@'. An empty socket
// gives a Notifier whose calls do nothing.
func New(socket string) (*Notifier, error) {
	if socket == "" {
		return &Notifier{}, nil
	}
	if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@") {
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: want an absolute path or an abstract name starting with '@'", socket)
	}
	return &Notifier{addr: socket}, nil
}

// FromEnv is New(getenv("NOTIFY_SOCKET")).
func FromEnv(getenv func(string) string) (*Notifier, error) {
	return New(getenv("NOTIFY_SOCKET"))
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != "" }

// Notify sends one datagram of newline-separated VAR=value assignments.
func (n *Notifier) Notify(state string) error {
	if !n.Enabled() {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		name := n.addr
		if name[0] == '@' {
			name = "\x00" + name[1:]
		}
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			return fmt.Errorf("sd_notify: %w", err)
		}
		n.conn = c
	}
	if _, err := n.conn.Write([]byte(state)); err != nil {
		n.conn.Close()
		n.conn = nil
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Ready tells the manager start-up is complete.
func (n *Notifier) Ready() error { return n.Notify("READY=1") }

// Stopping tells the manager the service is shutting down.
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Reloading tells the manager a configuration reload began; send Ready
// when it is done.
func (n *Notifier) Reloading() error { return n.Notify("RELOADING=1") }

// Watchdog is one keep-alive ping.
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// Status sets the free-form status line `systemctl status` shows. Newlines
// would end the assignment, so they become spaces.
func (n *Notifier) Status(s string) error {
	return n.Notify("STATUS=" + strings.NewReplacer("\n", " ", "\r", " ").Replace(s))
}

// Close releases the socket.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}

// WatchdogInterval is the watchdog timeout the manager expects pings
// within ($WATCHDOG_USEC), if it applies to this process ($WATCHDOG_PID
// unset or equal to pid). ok is false when no watchdog is configured; an
// unparsable value is an error.
func WatchdogInterval(getenv func(string) string, pid int) (d time.Duration, ok bool, err error) {
	us := getenv("WATCHDOG_USEC")
	if us == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(us, 10, 63)
	if err != nil || v == 0 {
		return 0, false, fmt.Errorf("WATCHDOG_USEC %q: want a positive number of microseconds", us)
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		wp, err := strconv.Atoi(p)
		if err != nil {
			return 0, false, fmt.Errorf("WATCHDOG_PID %q: %w", p, errors.Unwrap(err))
		}
		if wp != pid {
			return 0, false, nil
		}
	}
	return time.Duration(v) * time.Microsecond, true, nil
}
