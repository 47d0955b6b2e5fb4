package agent

import (
	"context"
	"log/slog"
	"os"
	"time"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/scan"
)

// Scanner is what the agent needs of a scan.Scanner.
type Scanner interface {
	Home(ctx context.Context) error
	Halt() error
	// SelfTest homes and runs the hardware self-test (scan.SelfTest).
	SelfTest(ctx context.Context) (*scan.SelfTestResult, error)
	// Magazine scans a magazine: self-tests before and after, journalled
	// progress (resume after a restart), label-named slides; the agent's
	// ScanHooks.BeforeSlide is asked before each slot.
	Magazine(ctx context.Context, magazine string, onReport func(*scan.Report) error) (*scan.MagazineResult, error)
	// RecoverInterrupted reports, from the journal, slides of magazine a
	// restart cut short (INCOMPLETE, rerun), without touching hardware.
	RecoverInterrupted(ctx context.Context, magazine string, onReport func(*scan.Report) error) ([]*scan.Report, error)
}

// ScanHooks are the agent's hooks into the scanner: NewScanner must put
// them into scan.Options (Progress, BeforeSlide).
type ScanHooks struct {
	// Progress follows the slide on the stage (status, health beats).
	Progress func(scan.Progress)
	// BeforeSlide holds the magazine while a pause is requested and
	// refuses the next slide when its result could not be stored.
	BeforeSlide func(ctx context.Context, slot int) error
}

var _ Scanner = (*scan.Scanner)(nil)

// Delivery stores results and events durably and sends them to the fleet
// (the agent's is backed by the durable outbox, telemetry/outbox).
type Delivery interface {
	// Deliver stores r durably before it returns, then sends it (or queues
	// it). An error means the result could not be stored (a storage
	// *hal.Fault when the disk is full).
	Deliver(ctx context.Context, r *scan.Report) error
	// Admit is asked before every new slide: nil, or why no result could
	// be stored now (disk full or failing: a storage *hal.Fault, code 9).
	// A refused slide is never scanned.
	Admit(ctx context.Context) error
	// Depth is the number of results and events stored but not yet
	// confirmed by the fleet.
	Depth() int
	// Connected reports the broker connection.
	Connected() bool
	// Event stores an event (fault, self-test, magazine done) durably and
	// sends it to the fleet; an error means it could not be stored.
	Event(ctx context.Context, kind string, body map[string]any) error
	// Flush tries to send what is pending until ctx ends.
	Flush(ctx context.Context) error
}

// FaultRegistry is what the agent needs of a hal.FaultRegistry.
type FaultRegistry interface {
	// Faults returns the latched faults.
	Faults() []*hal.Fault
	// Clear clears every latched fault (the technician's acknowledge).
	Clear() error
}

var _ FaultRegistry = (*hal.FaultRegistry)(nil)

// Notifier is the service manager (sdnotify.Notifier).
type Notifier interface {
	Ready() error
	Stopping() error
	Reloading() error
	Watchdog() error
	Status(s string) error
}

// Budgets of the stop sequence. The unit's TimeoutStopSec (deploy/) must
// exceed their sum, StopBudget.
const (
	// AbortBudget: the slide being scanned is stopped, unloaded (the
	// scanner allows itself one minute for that) and its INCOMPLETE report
	// stored.
	AbortBudget = 75 * time.Second
	// ParkBudget: focus retracted and stage moved to its park corner.
	ParkBudget = 20 * time.Second
	// FlushBudget: pending results acknowledged by the fleet (or left in
	// the outbox for the next start).
	FlushBudget = 15 * time.Second
	// StopBudget is the whole stop sequence.
	StopBudget = AbortBudget + ParkBudget + FlushBudget
)

// Options is everything the agent is built from.
type Options struct {
	Config     *config.Config
	ConfigPath string // shown in status
	// Reload re-reads and validates the configuration; it is called on
	// every receive from Hup (SIGHUP). Nil: no reload.
	Reload func() (*config.Config, error)
	Hup    <-chan os.Signal
	// NewScanner builds the scanner for a configuration (at start and after
	// a reload, for the next magazine); hooks must be passed to the
	// scanner's Options (Progress, BeforeSlide), and its StateDir must be
	// cfg.Agent.StateDir (the magazine journals live there).
	NewScanner func(cfg *config.Config, hooks ScanHooks) (Scanner, error)
	Machine    hal.Machine
	// Axes by name ("x", "y", "z") for jog and park: only axes that exist
	// (robot.Robot.Axes).
	Axes map[string]hal.Axis
	// Faults is the registry of every device that latches faults
	// (robot.Robot.Faults): a fault latched while the agent is idle shows
	// on the LEDs and goes to the fleet; the acknowledge clears them all.
	// Nil: nothing latches.
	Faults   FaultRegistry
	Delivery Delivery
	Panel    Panel            // the technician panel (*panel.Panel); nil: no LEDs
	Buttons  <-chan hal.Press // nil: no buttons
	Notifier Notifier         // nil: not under systemd
	Watchdog time.Duration    // systemd's WatchdogSec; 0: none
	Socket   string           // status socket path; "" = none
	Log      *slog.Logger     // nil: discard
	Level    *slog.LevelVar   // changed by a reload; may be nil
	Health   *Health          // nil: a new one (wire its Beat into the machine's clock)
	Now      func() time.Time // wall clock; nil: time.Now
	// StateChanged, if set, is called from the control loop on every
	// state transition (the first state included) and on every fault
	// latched, after the status shows it, so the fleet's health message
	// follows the agent at once rather than a health interval later (the
	// daemon hands it to delivery.Link.SetStage). It must not block.
	StateChanged func(s State)
	// Magazine names the n-th magazine (1-based).
	Magazine func(n int) string
	// Autostart starts the first magazine without a button press (the
	// simulated robot, tests).
	Autostart bool
	// Press, if set, enables the socket command "press" (the simulated
	// robot): it presses a panel button through its GPIO pin.
	Press func(button string, long bool) error
	// Hooks are test-only fault injections; nil in production.
	Hooks *TestHooks
}

// TestHooks inject faults for the daemon's subprocess tests. They are set
// only from PAPSCAN_TESTHOOK_* environment variables, never from the
// configuration.
type TestHooks struct {
	// Stall, when it receives, blocks the control loop for good (as a
	// deadlocked loop would): the watchdog pings must stop.
	Stall <-chan struct{}
	// SelfTestError, if set, makes the self-check fail with it.
	SelfTestError error
}
