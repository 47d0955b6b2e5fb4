package outbox

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
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

// Entry is one committed result, event or image.
type Entry struct {
	Seq         uint64          `json:"seq"`
	Kind        string          `json:"kind"` // telemetry.KindResult, KindEvent or KindImage
	ID          string          `json:"id"`   // result_id / event_id / image_id
	SlideID     string          `json:"slide_id,omitempty"`
	ResultID    string          `json:"result_id,omitempty"` // images: the result they belong to
	Event       string          `json:"event,omitempty"`
	Body        json.RawMessage `json:"body,omitempty"`
	CommittedAt time.Time       `json:"committed_at"`
}

// Outbox is the durable store. Safe for concurrent use.
type Outbox struct {
	db  *bolt.DB
	dir string
	// pageSize is the file's page size, read once at open: bbolt's
	// DB.Info reads its mmap without a lock and races with commits.
	pageSize int
	opts     Options
	log      *slog.Logger
	session  string

	damage *Damage
	hwf    *os.File // the high-water record (<path>.hwm)

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
//
// The file is hostile input: Open checks both bbolt meta pages, the page
// tree (bbolt's Check) and every entry (DecodeEntry, the ID index), and
// compares the last sequence number with the high-water record kept in
// <path>.hwm. A file that is damaged, truncated, empty, missing while the
// record says it held entries, or rolled back is kept aside as
// <path>.corrupt-<unix seconds> (never overwritten), every entry still
// readable in it is carried into a new file under the same session, and
// an EventDamaged event naming the sequence numbers that could not be
// recovered is committed, so the fleet learns of the loss. Open then
// succeeds and Damage describes what happened (an error wrapping
// ErrStorage, for the agent to latch and report). Open fails only when
// the file cannot be opened at all (locked by another process, directory
// not writable, not a regular file).
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
	log := opts.Logger.With("component", "outbox")
	hwPath := path + ".hwm"
	hw, hwOK, err := readHighWater(hwPath)
	if err != nil {
		return nil, classify(fmt.Errorf("outbox: high-water record %s: %w", hwPath, err))
	}
	var cause error
	exists := true
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		exists = false
		if hwOK && hw.Seq > 0 {
			cause = fmt.Errorf("the file is missing, but seq %d of session %s was committed to it", hw.Seq, hw.Session)
		} else if err := create(path, opts.OpenTimeout); err != nil {
			return nil, classify(fmt.Errorf("outbox: create %s: %w", path, err))
		}
	case err != nil:
		return nil, classify(fmt.Errorf("outbox: %w", err))
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrStorage, path)
	}
	var db *bolt.DB
	var in fileState
	if cause == nil {
		var fatal error
		db, in, cause, fatal = openChecked(path, opts.OpenTimeout)
		if fatal != nil {
			return nil, classify(fmt.Errorf("outbox: open %s: %w", path, fatal))
		}
		if cause == nil && hwOK {
			switch {
			case hw.Session == in.session && hw.Seq > in.seq:
				cause = fmt.Errorf("rolled back: the file's last seq is %d, but seq %d was committed", in.seq, hw.Seq)
			case hw.Session != in.session && hw.Seq > 0:
				cause = fmt.Errorf("the file holds session %s, but seq %d of session %s was committed (file replaced)", in.session, hw.Seq, hw.Session)
			}
		}
		if cause == nil && in.metaDamaged && !hwOK {
			cause = errors.New("one bbolt meta page is damaged and there is no high-water record to rule out a rollback")
		}
		if cause != nil && db != nil {
			db.Close()
			db = nil
		}
	}
	var dmg *Damage
	if cause != nil {
		log.Error("outbox file damaged: keeping it aside and recovering what it holds", "file", path, "cause", cause)
		dmg, err = rebuild(path, exists, cause, hw, hwOK, opts.OpenTimeout)
		if err != nil {
			return nil, classify(fmt.Errorf("outbox: recover %s (%v): %w", path, cause, err))
		}
		var fatal error
		db, in, cause, fatal = openChecked(path, opts.OpenTimeout)
		if fatal != nil || cause != nil {
			return nil, classify(fmt.Errorf("outbox: recovered %s does not open: %w", path, errors.Join(fatal, cause)))
		}
	}
	o := &Outbox{db: db, dir: dir, pageSize: db.Info().PageSize, opts: opts, log: log, changed: make(chan struct{}, 1),
		session: in.session, depth: in.depth, floor: in.floor, damage: dmg}
	o.hwf, err = os.OpenFile(hwPath, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		db.Close()
		return nil, classify(fmt.Errorf("outbox: high-water record: %w", err))
	}
	if !hwOK || hw.Session != in.session || hw.Seq != in.seq {
		h := highWater{Session: in.session, Seq: in.seq, Floor: in.floor}
		err := writeHighWater(o.hwf, h)
		if err == nil {
			h.Seq++ // the other slot too, so neither holds an older session
			_, err = o.hwf.WriteAt(encodeHighWater(highWater{Session: in.session, Seq: in.seq, Floor: in.floor}), int64(h.Seq%2)*hwmSlot)
		}
		if err == nil {
			err = o.hwf.Sync()
		}
		if err != nil {
			o.Close()
			return nil, classify(fmt.Errorf("outbox: high-water record: %w", err))
		}
	}
	if dmg != nil {
		if _, err := o.PutEvent(EventDamaged, dmg.event()); err != nil {
			o.Close()
			return nil, fmt.Errorf("outbox: announce the damage: %w", err)
		}
		log.Error("outbox recovered after damage; the fleet is told what was lost", "damage", dmg.Error())
	}
	return o, nil
}

// fileState is what openChecked read from a consistent file.
type fileState struct {
	session     string
	seq         uint64 // last assigned seq (meta)
	depth       int
	floor       uint64
	metaDamaged bool
}

// openChecked opens and verifies the file. cause says why it is damaged
// (db is then nil); fatal is an error that is not about the file's
// content (locked by another process).
func openChecked(path string, timeout time.Duration) (db *bolt.DB, in fileState, cause, fatal error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, in, nil, err
	}
	in.metaDamaged, cause = precheck(b)
	if cause != nil {
		return nil, in, cause, nil
	}
	func() {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if p := recover(); p != nil {
				cause = fmt.Errorf("bbolt panicked opening it: %v", p)
			}
		}()
		db, err = bolt.Open(path, 0o640, &bolt.Options{Timeout: timeout})
	}()
	switch {
	case cause != nil:
		return nil, in, cause, nil
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, in, nil, err
	case err != nil:
		return nil, in, err, nil
	}
	st, err := verify(db)
	if err != nil {
		db.Close()
		return nil, in, err, nil
	}
	st.metaDamaged = in.metaDamaged
	return db, st, nil, nil
}

// verify checks the page tree (bbolt's Check), the buckets, the session,
// every entry (DecodeEntry) and the ID index both ways. A panic or memory
// fault inside bbolt (a damaged page) is an error, not a crash.
func verify(db *bolt.DB) (st fileState, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bbolt panicked reading it: %v", p)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain: the checker goroutine sends every error
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return first
		}
		entries, ids, m := tx.Bucket(bucketEntries), tx.Bucket(bucketIDs), tx.Bucket(bucketMeta)
		if entries == nil || ids == nil || m == nil {
			return errors.New("a bucket is missing")
		}
		st.session = string(m.Get(keySession))
		if !idRe.MatchString(st.session) {
			return fmt.Errorf("meta session %q", st.session)
		}
		if v := m.Get(keySeq); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("meta seq of %d bytes", len(v))
			}
			st.seq = binary.BigEndian.Uint64(v)
			if st.seq >= maxSeq {
				return fmt.Errorf("meta seq %d out of range", st.seq)
			}
		}
		err := entries.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("entry key of %d bytes", len(k))
			}
			seq := binary.BigEndian.Uint64(k)
			e, err := DecodeEntry(seq, v)
			if err != nil {
				return err
			}
			if seq > st.seq {
				return fmt.Errorf("entry %d beyond the last assigned seq %d", seq, st.seq)
			}
			if !bytes.Equal(ids.Get([]byte(e.ID)), k) {
				return fmt.Errorf("entry %d (%s): ID index mismatch", seq, e.ID)
			}
			if st.depth == 0 {
				st.floor = seq
			}
			st.depth++
			return nil
		})
		if err != nil {
			return err
		}
		n := 0
		err = ids.ForEach(func(k, v []byte) error {
			n++
			if len(v) != 8 || entries.Get(v) == nil {
				return fmt.Errorf("ID %q indexes no entry", k)
			}
			return nil
		})
		if err == nil && n != st.depth {
			err = fmt.Errorf("%d IDs indexed for %d entries", n, st.depth)
		}
		return err
	})
	return st, err
}

// rebuild replaces a damaged (or missing) outbox file by a new one that
// holds every entry a raw scan of it finds, under its session and with
// its sequence counter (never lower than the high-water record), after
// keeping the damaged file aside. It returns the damage report.
func rebuild(path string, exists bool, cause error, hw highWater, hwOK bool, timeout time.Duration) (*Damage, error) {
	d := &Damage{Path: path, Cause: cause}
	s := salvaged{entries: map[uint64]Entry{}}
	if exists {
		var err error
		if s, err = scanFile(path); err != nil {
			return nil, err
		}
	}
	d.Session = s.session
	if d.Session == "" {
		if hwOK {
			d.Session = hw.Session
		} else {
			d.Session = telemetry.NewID()
		}
	}
	var entries []Entry
	var top uint64 // highest recovered seq
	for _, e := range s.entries {
		top = max(top, e.Seq)
		entries = append(entries, e)
	}
	// The sequence counter: never below a recovered entry or the
	// high-water record; a counter value found in the scan counts only
	// when plausible (a damaged page may hold any 8 bytes).
	seq := top
	if s.seq <= top+1<<20 {
		seq = max(seq, s.seq)
	}
	lo := uint64(1)
	if hwOK && hw.Session == d.Session && hw.Seq < maxSeq {
		seq = max(seq, hw.Seq)
		lo = max(lo, hw.Floor)
	}
	slices.SortFunc(entries, func(a, b Entry) int { return cmp.Compare(a.Seq, b.Seq) })
	// One entry per ID (a stale copy in a freed page may repeat one).
	seen := map[string]bool{}
	entries = slices.DeleteFunc(entries, func(e Entry) bool {
		dup := seen[e.ID]
		seen[e.ID] = true
		return dup
	})
	d.Recovered = len(entries)
	d.LostFrom, d.LostTo, d.LostCount = missing(entries, lo, seq)
	tmp, err := build(path, d.Session, seq, entries, timeout)
	if err != nil {
		return nil, err
	}
	if exists {
		if d.Quarantined, err = keepAside(path, time.Now()); err != nil {
			os.Remove(tmp)
			return nil, fmt.Errorf("keep the damaged file aside: %w", err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	return d, syncDir(filepath.Dir(path))
}

// maxSeq bounds sequence numbers: far beyond any robot's life, far from
// overflowing.
const maxSeq = 1 << 62

// missing returns the first and last seq in [lo, hi] that no entry (sorted
// by seq, unique) holds, and how many there are.
func missing(entries []Entry, lo, hi uint64) (from, to uint64, n int) {
	if hi < lo || hi == 0 {
		return 0, 0, 0
	}
	held := 0
	from, to = lo, hi
	for _, e := range entries {
		if e.Seq < lo || e.Seq > hi {
			continue
		}
		held++
		if e.Seq == from {
			from++
		}
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Seq == to && to >= from {
			to--
		}
	}
	total := hi - lo + 1
	if uint64(held) >= total {
		return 0, 0, 0
	}
	return from, to, int(min(total-uint64(held), 1<<31-1))
}

// create initialises a new outbox file at path via path+".new".
func create(path string, timeout time.Duration) error {
	tmp, err := build(path, telemetry.NewID(), 0, nil, timeout)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// build writes a complete outbox file at path+".new" (session, seq
// counter, entries and their ID index) and returns its name. bbolt can
// leave a corrupt file if the process dies during the very first
// initialisation: the caller renames it into place once complete.
func build(path, session string, seq uint64, entries []Entry, timeout time.Duration) (string, error) {
	tmp := path + ".new"
	_ = os.Remove(tmp) // a leftover of a crash during an earlier creation
	db, err := bolt.Open(tmp, 0o640, &bolt.Options{Timeout: timeout})
	if err != nil {
		return "", err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEntries, bucketIDs, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		if err := m.Put(keySession, []byte(session)); err != nil {
			return err
		}
		if seq > 0 {
			if err := m.Put(keySeq, seqKey(seq)); err != nil {
				return err
			}
		}
		for _, e := range entries {
			rec, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketEntries).Put(seqKey(e.Seq), rec); err != nil {
				return err
			}
			if err := tx.Bucket(bucketIDs).Put([]byte(e.ID), seqKey(e.Seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return tmp, nil
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

// PutImage commits one image of a result (m: a validated
// telemetry.ImageMessage; its image_id is the entry ID and the fleet's ack
// key, its Body is stored) and returns once it is on disk. Images are
// bounded (telemetry.MaxImageMessageBytes each) and never take the room
// kept for results: when committing this one would leave less than
// MinFreeBytes free, PutImage refuses it with an error wrapping ErrFull
// without latching a storage fault (Admit is unaffected); the result it
// belongs to is already committed. Putting an image_id already held
// returns the held entry.
func (o *Outbox) PutImage(m telemetry.ImageMessage) (Entry, error) {
	if err := m.Validate(); err != nil {
		return Entry{}, fmt.Errorf("%w: %w", telemetry.ErrInvalidPayload, err)
	}
	body, err := json.Marshal(m.Body)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: image %s: %w", telemetry.ErrInvalidPayload, m.ImageID, err)
	}
	if len(body) > telemetry.MaxImageMessageBytes {
		return Entry{}, fmt.Errorf("%w: image %s: body is %d bytes, more than %d", telemetry.ErrInvalidPayload, m.ImageID, len(body), telemetry.MaxImageMessageBytes)
	}
	if o.opts.MinFreeBytes > 0 {
		free, err := o.opts.FreeSpace(o.dir)
		if err != nil {
			return Entry{}, classify(fmt.Errorf("outbox: free space of %s: %w", o.dir, err))
		}
		// bbolt copies the pages it changes: count the image twice.
		if need := uint64(o.opts.MinFreeBytes) + 2*uint64(len(body)); free < need {
			return Entry{}, fmt.Errorf("%w: image %s of slide %s (%d bytes) not committed: %d bytes free, %d kept for results",
				ErrFull, m.ImageID, m.SlideID, len(body), free, o.opts.MinFreeBytes)
		}
	}
	return o.put(Entry{Kind: telemetry.KindImage, ID: m.ImageID, SlideID: m.SlideID, ResultID: m.ResultID, Body: body})
}

func (o *Outbox) put(e Entry) (Entry, error) {
	e.CommittedAt = time.Now().UTC()
	e.Seq = 1 // checked with a placeholder; the real seq is assigned below
	if err := e.validate(); err != nil {
		return Entry{}, fmt.Errorf("%w: %s %s: %w", telemetry.ErrInvalidPayload, e.Kind, e.ID, err)
	}
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
	// The high-water record, after the commit: a later rollback of the
	// file to an older meta page is then detected at the next Open.
	if err := writeHighWater(o.hwf, highWater{Session: o.session, Seq: e.Seq, Floor: o.floor}); err != nil {
		o.full = classify(fmt.Errorf("outbox: high-water record: %w", err))
		o.log.Error("outbox high-water record not written (the entry is committed)", "seq", e.Seq, "err", err)
	} else {
		o.full = nil
	}
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
		reusable := uint64(st.FreePageN+st.PendingPageN) * uint64(o.pageSize)
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
			if len(k) != 8 {
				return fmt.Errorf("entry key of %d bytes", len(k))
			}
			e, err := DecodeEntry(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		// Damaged since Open: a storage fault (Admit refuses new slides)
		// until the next Open recovers the file.
		err = fmt.Errorf("%w: outbox: read: %w", ErrStorage, err)
		o.mu.Lock()
		o.full = err
		o.mu.Unlock()
		return nil, err
	}
	return out, nil
}

// Check verifies the file's consistency (bbolt's page check), every
// entry (DecodeEntry) and the ID index, as Open does.
func (o *Outbox) Check() error {
	if _, err := verify(o.db); err != nil {
		return fmt.Errorf("%w: check %s: %w", ErrStorage, o.Path(), err)
	}
	return nil
}

// Damage reports what Open found wrong with the file and recovered (nil
// when the file was sound). A non-nil Damage is a storage fault to latch
// and report; the outbox has already committed an EventDamaged event.
func (o *Outbox) Damage() *Damage { return o.damage }

// Close closes the file. Entries stay on disk for the next Open.
func (o *Outbox) Close() error {
	var herr error
	if o.hwf != nil {
		herr = o.hwf.Close()
	}
	return errors.Join(o.db.Close(), herr)
}

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
		Kind: e.Kind, ID: e.ID, SlideID: e.SlideID, ResultID: e.ResultID, Event: e.Event, Body: e.Body,
		OutboxSession: o.session, OutboxSeq: e.Seq, OutboxFloor: floor,
		CommittedAt: e.CommittedAt, Attempt: attempt,
	}
}
