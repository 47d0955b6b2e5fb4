package outbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"papscan/telemetry"
)

// Errors. Put wraps ErrFull or ErrStorage; test with errors.Is.
var (
	// ErrFull: the state directory's file system is full (ENOSPC, EDQUOT,
	// EFBIG) or below Options.MinFreeBytes. Nothing already committed is
	// evicted; the robot must stop taking new slides.
	ErrFull = errors.New("outbox: storage full")
	// ErrStorage: any other failure to commit to disk (I/O error,
	// read-only file system, corrupt file).
	ErrStorage = errors.New("outbox: storage failure")
	// ErrClosed: the outbox was closed.
	ErrClosed = errors.New("outbox: closed")
)

// Defaults for zero Options fields.
const (
	DefaultMinFreeBytes = 16 << 20 // 16 MiB
	DefaultOpenTimeout  = 5 * time.Second
)

var (
	bucketEntries = []byte("entries") // seq (8 bytes big endian) -> JSON record
	bucketIDs     = []byte("ids")     // entry ID -> seq
	bucketMeta    = []byte("meta")
	keySession    = []byte("session")
	keySeq        = []byte("seq") // last assigned seq
)

// Options configures Open.
type Options struct {
	// MinFreeBytes is the free space the file system must keep for Admit
	// to accept new work (slides). Default DefaultMinFreeBytes; negative
	// disables the check.
	MinFreeBytes int64
	// OpenTimeout bounds the wait for the file lock (another process
	// holding the outbox). Default DefaultOpenTimeout.
	OpenTimeout time.Duration
	// FreeSpace reports the free bytes of the file system holding dir.
	// Default: statfs. Tests inject a full disk with it.
	FreeSpace func(dir string) (uint64, error)
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Entry is one committed result or event.
type Entry struct {
	Seq         uint64          `json:"seq"`
	Kind        string          `json:"kind"` // telemetry.KindResult or telemetry.KindEvent
	ID          string          `json:"id"`   // result_id / event_id
	SlideID     string          `json:"slide_id,omitempty"`
	Event       string          `json:"event,omitempty"`
	Body        json.RawMessage `json:"body,omitempty"`
	CommittedAt time.Time       `json:"committed_at"`
}

// Outbox is the durable store. Safe for concurrent use.
type Outbox struct {
	db      *bolt.DB
	dir     string
	opts    Options
	log     *slog.Logger
	session string

	mu      sync.Mutex
	depth   int
	floor   uint64 // lowest seq held (0 when empty)
	full    error  // last Put failure caused by the disk, cleared by a good Put/Admit
	changed chan struct{}
}

// Open opens (creating if needed) the outbox file at path. The outbox
// session ID is created with the file and persisted; sequence numbers
// continue across restarts. The file and its directory are fsynced at
// creation so a crash during the first start cannot leave a half-created
// file behind.
func Open(path string, opts Options) (*Outbox, error) {
	if opts.MinFreeBytes == 0 {
		opts.MinFreeBytes = DefaultMinFreeBytes
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = DefaultOpenTimeout
	}
	if opts.FreeSpace == nil {
		opts.FreeSpace = FreeSpace
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, classify(fmt.Errorf("outbox: create %s: %w", dir, err))
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		// bbolt can leave a corrupt file if the process dies during the
		// very first initialisation: build it under a temporary name and
		// rename it into place, so path is either absent or complete.
		if err := create(path, opts.OpenTimeout); err != nil {
			return nil, classify(fmt.Errorf("outbox: create %s: %w", path, err))
		}
	}
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: opts.OpenTimeout})
	if err != nil {
		return nil, classify(fmt.Errorf("outbox: open %s: %w", path, err))
	}
	o := &Outbox{db: db, dir: dir, opts: opts, log: opts.Logger.With("component", "outbox"), changed: make(chan struct{}, 1)}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEntries, bucketIDs, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		if s := m.Get(keySession); s != nil {
			o.session = string(s)
			return nil
		}
		o.session = telemetry.NewID()
		return m.Put(keySession, []byte(o.session))
	})
	if err != nil {
		db.Close()
		return nil, classify(fmt.Errorf("outbox: initialise %s: %w", path, err))
	}
	if err := o.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		o.depth = b.Stats().KeyN
		if k, _ := b.Cursor().First(); k != nil {
			o.floor = binary.BigEndian.Uint64(k)
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, classify(fmt.Errorf("outbox: read %s: %w", path, err))
	}
	return o, nil
}

// create initialises a new outbox file at path via path+".new".
func create(path string, timeout time.Duration) error {
	tmp := path + ".new"
	_ = os.Remove(tmp) // a leftover of a crash during an earlier creation
	db, err := bolt.Open(tmp, 0o640, &bolt.Options{Timeout: timeout})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEntries, bucketIDs, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySession, []byte(telemetry.NewID()))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// classify wraps err with ErrFull for out-of-space errors and ErrStorage
// for every other failure.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return fmt.Errorf("%w: %w", ErrStorage, err)
}

// Session is the outbox's persisted stream ID (envelope outbox_session).
func (o *Outbox) Session() string { return o.session }

// Path is the outbox file.
func (o *Outbox) Path() string { return o.db.Path() }

// Depth is the number of entries not yet acknowledged by the fleet.
func (o *Outbox) Depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.depth
}

// Floor is the lowest sequence number still held (0 when empty).
func (o *Outbox) Floor() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.floor
}

// Changed is signalled (capacity 1, never blocks the writer) after every
// successful Put.
func (o *Outbox) Changed() <-chan struct{} { return o.changed }

// PutResult commits a slide's result (body: JSON) under resultID and
// returns once it is on disk (bbolt fsyncs on commit). Putting an ID that
// is already held returns the held entry unchanged (idempotent retry).
func (o *Outbox) PutResult(slideID, resultID string, body []byte) (Entry, error) {
	if err := telemetry.ValidateSlideID(slideID); err != nil {
		return Entry{}, err
	}
	if !json.Valid(body) {
		return Entry{}, fmt.Errorf("%w: result %s for slide %q: body is not valid JSON", telemetry.ErrInvalidPayload, resultID, slideID)
	}
	return o.put(Entry{Kind: telemetry.KindResult, ID: resultID, SlideID: slideID, Body: body})
}

// PutEvent commits an event (payload marshalled to JSON, nil = no body)
// under a new event ID and returns it once on disk.
func (o *Outbox) PutEvent(event string, payload any) (Entry, error) {
	var body json.RawMessage
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return Entry{}, fmt.Errorf("%w: event %q: %w", telemetry.ErrInvalidPayload, event, err)
		}
		body = b
	}
	if event == "" {
		return Entry{}, fmt.Errorf("%w: event kind is empty", telemetry.ErrInvalidPayload)
	}
	return o.put(Entry{Kind: telemetry.KindEvent, ID: telemetry.NewID(), Event: event, Body: body})
}

func (o *Outbox) put(e Entry) (Entry, error) {
	if e.ID == "" || len(e.ID) > 128 {
		return Entry{}, fmt.Errorf("%w: entry ID %q: want 1..128 bytes", telemetry.ErrInvalidPayload, e.ID)
	}
	e.CommittedAt = time.Now().UTC()
	var existing *Entry
	err := o.db.Update(func(tx *bolt.Tx) error {
		ids := tx.Bucket(bucketIDs)
		entries := tx.Bucket(bucketEntries)
		if k := ids.Get([]byte(e.ID)); k != nil {
			var held Entry
			if err := json.Unmarshal(entries.Get(k), &held); err == nil {
				existing = &held
				return nil
			}
		}
		m := tx.Bucket(bucketMeta)
		var seq uint64
		if v := m.Get(keySeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		seq++
		e.Seq = seq
		key := seqKey(seq)
		rec, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := m.Put(keySeq, key); err != nil {
			return err
		}
		if err := entries.Put(key, rec); err != nil {
			return err
		}
		return ids.Put([]byte(e.ID), key)
	})
	if err != nil {
		err = classify(fmt.Errorf("outbox: commit %s %s: %w", e.Kind, e.ID, err))
		if errors.Is(err, ErrFull) || errors.Is(err, ErrStorage) {
			o.mu.Lock()
			o.full = err
			o.mu.Unlock()
		}
		return Entry{}, err
	}
	if existing != nil {
		return *existing, nil
	}
	o.mu.Lock()
	o.depth++
	if o.floor == 0 {
		o.floor = e.Seq
	}
	o.full = nil
	o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
	return e, nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// Admit reports whether the robot may take new work (a slide): nil, or an
// error wrapping ErrFull when the file system holding the outbox has less
// than MinFreeBytes free or the last commit failed for lack of space, or
// ErrStorage when the last commit failed otherwise. Call it before every
// new slide; a result that cannot be committed must never be produced.
func (o *Outbox) Admit() error {
	o.mu.Lock()
	last := o.full
	o.mu.Unlock()
	if o.opts.MinFreeBytes > 0 {
		free, err := o.opts.FreeSpace(o.dir)
		if err != nil {
			return classify(fmt.Errorf("outbox: free space of %s: %w", o.dir, err))
		}
		// bbolt never shrinks its file: pages freed by acks are reused by
		// later commits, so they count as free space too.
		st := o.db.Stats()
		reusable := uint64(st.FreePageN+st.PendingPageN) * uint64(o.db.Info().PageSize)
		if free+reusable < uint64(o.opts.MinFreeBytes) {
			return fmt.Errorf("%w: %s has %d bytes free (+%d reusable in the outbox file), below the %d-byte reserve",
				ErrFull, o.dir, free, reusable, o.opts.MinFreeBytes)
		}
	}
	if last != nil {
		return fmt.Errorf("outbox: last commit failed: %w", last)
	}
	return nil
}

// Ack removes the entries with these IDs (the fleet acknowledged them) in
// one fsynced transaction and returns how many were held. Unknown IDs
// (already acked, duplicates) are ignored.
func (o *Outbox) Ack(ids ...string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n := 0
	var floor uint64
	err := o.db.Update(func(tx *bolt.Tx) error {
		n = 0
		idb := tx.Bucket(bucketIDs)
		entries := tx.Bucket(bucketEntries)
		for _, id := range ids {
			k := idb.Get([]byte(id))
			if k == nil {
				continue
			}
			k = append([]byte(nil), k...)
			if err := entries.Delete(k); err != nil {
				return err
			}
			if err := idb.Delete([]byte(id)); err != nil {
				return err
			}
			n++
		}
		floor = 0
		if k, _ := entries.Cursor().First(); k != nil {
			floor = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if err != nil {
		return 0, classify(fmt.Errorf("outbox: ack: %w", err))
	}
	o.mu.Lock()
	o.depth -= n
	o.floor = floor
	o.mu.Unlock()
	return n, nil
}

// Pending returns up to limit entries with seq > after, in seq order.
func (o *Outbox) Pending(after uint64, limit int) ([]Entry, error) {
	var out []Entry
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEntries).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("outbox: read: %w", err))
	}
	return out, nil
}

// Check verifies the file's consistency (bbolt's page check) and that
// every entry decodes and is indexed by its ID.
func (o *Outbox) Check() error {
	err := o.db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain: the checker goroutine sends every error
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return first
		}
		ids := tx.Bucket(bucketIDs)
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			if e.Seq != binary.BigEndian.Uint64(k) || string(ids.Get([]byte(e.ID))) != string(k) {
				return fmt.Errorf("entry %x (%s): index mismatch", k, e.ID)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("%w: check %s: %w", ErrStorage, o.Path(), err)
	}
	return nil
}

// Close closes the file. Entries stay on disk for the next Open.
func (o *Outbox) Close() error { return o.db.Close() }

// FreeSpace returns the bytes available to an unprivileged user on the
// file system holding dir (statfs f_bavail x f_bsize).
func FreeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// Usage is the disk figure for health telemetry.
type Usage struct {
	FreeBytes, TotalBytes uint64
}

// DiskUsage returns the free and total bytes of the file system holding
// dir.
func DiskUsage(dir string) (Usage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return Usage{}, err
	}
	return Usage{FreeBytes: uint64(st.Bavail) * uint64(st.Bsize), TotalBytes: uint64(st.Blocks) * uint64(st.Bsize)}, nil
}

// Delivery turns an entry into what telemetry publishes.
func (o *Outbox) Delivery(e Entry, floor uint64, attempt int) telemetry.Delivery {
	return telemetry.Delivery{
		Kind: e.Kind, ID: e.ID, SlideID: e.SlideID, Event: e.Event, Body: e.Body,
		OutboxSession: o.session, OutboxSeq: e.Seq, OutboxFloor: floor,
		CommittedAt: e.CommittedAt, Attempt: attempt,
	}
}
