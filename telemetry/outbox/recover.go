package outbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"time"

	"papscan/telemetry"
)

// EventDamaged is the event an outbox commits about itself when Open found
// its file damaged or rolled back: the fleet learns which sequence numbers
// of which outbox session may be lost (see Damage).
const EventDamaged = "outbox_damaged"

// Damage is what Open found wrong with the outbox file and did about it. It
// is an error wrapping ErrStorage: the agent latches it as a storage fault
// and reports it; the outbox itself is usable (what could be recovered was).
type Damage struct {
	// Path is the outbox file.
	Path string
	// Quarantined is where the damaged file was moved aside (never
	// overwritten); "" when there was nothing to keep (missing file) or
	// the file itself was consistent (a rollback).
	Quarantined string
	// Cause says what was wrong.
	Cause error
	// Session is the outbox session the entries belonged to; the new
	// file keeps it when it was known, so the fleet's gap detection goes on.
	Session string
	// Recovered counts the entries carried over into the new file.
	Recovered int
	// LostFrom..LostTo is the range of sequence numbers that was held
	// before and could not be recovered (LostCount of them); 0, 0 when
	// nothing is known lost. Entries the fleet acked after the last
	// commit may be in the range: the fleet knows which it holds.
	LostFrom, LostTo uint64
	LostCount        int
}

func (d *Damage) Error() string {
	s := fmt.Sprintf("outbox: %s damaged (%v)", d.Path, d.Cause)
	if d.Quarantined != "" {
		s += "; kept aside as " + d.Quarantined
	}
	s += fmt.Sprintf("; %d entries recovered", d.Recovered)
	if d.LostCount > 0 {
		s += fmt.Sprintf("; %d entries of seq %d..%d lost", d.LostCount, d.LostFrom, d.LostTo)
	}
	return s
}

// Unwrap makes errors.Is(d, ErrStorage) true and exposes the cause.
func (d *Damage) Unwrap() []error { return []error{ErrStorage, d.Cause} }

// event is the body of the EventDamaged event.
func (d *Damage) event() map[string]any {
	m := map[string]any{
		"path": d.Path, "cause": d.Cause.Error(), "outbox_session": d.Session, "recovered": d.Recovered,
		"lost_count": d.LostCount,
	}
	if d.Quarantined != "" {
		m["quarantined"] = d.Quarantined
	}
	if d.LostCount > 0 {
		m["lost_from_seq"], m["lost_to_seq"] = d.LostFrom, d.LostTo
	}
	return m
}

// Patterns of what an entry may hold. IDs are result IDs (hex) and event
// IDs (UUIDs); event kinds are snake_case.
var (
	idRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	eventRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// DecodeEntry decodes and validates one stored entry (the value under
// key seq): strict JSON, seq matching the key, a known kind, an ID and a
// slide ID or event kind of the right shape, a JSON body and a commit
// time. Every entry read from the file goes through it: the file is
// hostile input.
func DecodeEntry(seq uint64, v []byte) (Entry, error) {
	var e Entry
	d := json.NewDecoder(bytes.NewReader(v))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("entry %d: %w", seq, err)
	}
	if d.More() {
		return Entry{}, fmt.Errorf("entry %d: trailing data", seq)
	}
	if err := e.validate(); err != nil {
		return Entry{}, fmt.Errorf("entry %d: %w", seq, err)
	}
	if e.Seq != seq {
		return Entry{}, fmt.Errorf("entry %d: field seq is %d", seq, e.Seq)
	}
	return e, nil
}

func (e *Entry) validate() error {
	switch {
	case e.Seq == 0:
		return errors.New("field seq: 0")
	case !idRe.MatchString(e.ID):
		return fmt.Errorf("field id: want 1..128 of [A-Za-z0-9._:-], got %q", e.ID)
	case e.CommittedAt.IsZero():
		return errors.New("field committed_at: missing")
	case len(e.Body) > 0 && !json.Valid(e.Body):
		return errors.New("field body: not JSON")
	}
	switch e.Kind {
	case telemetry.KindResult:
		if err := telemetry.ValidateSlideID(e.SlideID); err != nil {
			return fmt.Errorf("field slide_id: %w", err)
		}
		if e.Event != "" || len(e.Body) == 0 || e.ResultID != "" {
			return errors.New("result: field event or result_id set, or body missing")
		}
	case telemetry.KindImage:
		if err := telemetry.ValidateSlideID(e.SlideID); err != nil {
			return fmt.Errorf("field slide_id: %w", err)
		}
		if !idRe.MatchString(e.ResultID) {
			return fmt.Errorf("field result_id: want 1..128 of [A-Za-z0-9._:-], got %q", e.ResultID)
		}
		if e.Event != "" || len(e.Body) == 0 || e.Body[0] != '{' {
			return errors.New("image: field event set, or body not a JSON object")
		}
	case telemetry.KindEvent:
		if !eventRe.MatchString(e.Event) {
			return fmt.Errorf("field event: want snake_case, got %q", e.Event)
		}
		if e.SlideID != "" || e.ResultID != "" {
			return errors.New("event: field slide_id or result_id set")
		}
	default:
		return fmt.Errorf("field kind: want %q, %q or %q, got %q", telemetry.KindResult, telemetry.KindEvent, telemetry.KindImage, e.Kind)
	}
	return nil
}

// ---------------------------------------------------------------------------
// High-water mark: the last committed seq, kept in a second file.

// highWater is the last committed sequence number of a session and the
// floor at that moment, kept in <outbox>.hwm beside the bbolt file. bbolt
// falls back to its older meta page when the newer one is damaged, which
// silently rolls back the last commit; the second record exposes it, and
// it says which seqs were held when the file itself is lost.
type highWater struct {
	Session    string
	Seq, Floor uint64
}

const (
	hwmSlot  = 96
	hwmMagic = "PSHW"
)

// readHighWater reads the newest valid of the two slots; ok false when
// there is none (no file, or both slots damaged).
func readHighWater(path string) (hw highWater, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return highWater{}, false, nil
	}
	if err != nil {
		return highWater{}, false, err
	}
	for i := 0; i+hwmSlot <= len(b) && i < 2*hwmSlot; i += hwmSlot {
		if h, good := decodeHighWater(b[i : i+hwmSlot]); good && (!ok || h.Seq > hw.Seq) {
			hw, ok = h, true
		}
	}
	return hw, ok, nil
}

func decodeHighWater(s []byte) (highWater, bool) {
	if string(s[:4]) != hwmMagic || crc32.ChecksumIEEE(s[:hwmSlot-4]) != binary.BigEndian.Uint32(s[hwmSlot-4:]) {
		return highWater{}, false
	}
	n := int(s[20])
	if n > 64 {
		return highWater{}, false
	}
	return highWater{Seq: binary.BigEndian.Uint64(s[4:]), Floor: binary.BigEndian.Uint64(s[12:]), Session: string(s[21 : 21+n])}, true
}

func encodeHighWater(h highWater) []byte {
	s := make([]byte, hwmSlot)
	copy(s, hwmMagic)
	binary.BigEndian.PutUint64(s[4:], h.Seq)
	binary.BigEndian.PutUint64(s[12:], h.Floor)
	s[20] = byte(copy(s[21:21+64], h.Session))
	binary.BigEndian.PutUint32(s[hwmSlot-4:], crc32.ChecksumIEEE(s[:hwmSlot-4]))
	return s
}

// writeHighWater writes h into slot seq%2 in place and fsyncs: a torn
// write damages one slot, and the other still holds the previous value.
func writeHighWater(f *os.File, h highWater) error {
	if _, err := f.WriteAt(encodeHighWater(h), int64(h.Seq%2)*hwmSlot); err != nil {
		return err
	}
	return f.Sync()
}

// ---------------------------------------------------------------------------
// Looking at a bbolt file without trusting it.

const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2
	pageHeader  = 16
	metaOffset  = pageHeader
	leafFlag    = 0x02
	bucketFlag  = 0x01
	leafElem    = 16
)

type metaPage struct {
	pageSize                   uint32
	root, freelist, pgid, txid uint64
}

// readMeta decodes and checks (magic, version, checksum) the meta page at
// the start of b.
func readMeta(b []byte) (metaPage, bool) {
	if len(b) < metaOffset+64 {
		return metaPage{}, false
	}
	m := b[metaOffset : metaOffset+64]
	if binary.LittleEndian.Uint32(m[0:]) != boltMagic || binary.LittleEndian.Uint32(m[4:]) != boltVersion {
		return metaPage{}, false
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != binary.LittleEndian.Uint64(m[56:]) {
		return metaPage{}, false
	}
	return metaPage{pageSize: binary.LittleEndian.Uint32(m[8:]), root: binary.LittleEndian.Uint64(m[16:]), freelist: binary.LittleEndian.Uint64(m[32:]),
		pgid: binary.LittleEndian.Uint64(m[40:]), txid: binary.LittleEndian.Uint64(m[48:])}, true
}

// precheck validates the raw file b before bbolt maps it: both meta
// pages, the freelist page, and the whole page tree from the root bucket
// (every page inside the file and visited once, every element inside its
// page). bbolt trusts its file: a forged length or page ID makes it read
// past the mapping and crash the process (a memory fault, not a panic),
// so nothing reaches bbolt that this walk has not bounded. It returns an
// error when the file is not safe to open, and metaDamaged when one meta
// page is invalid (bbolt then uses the other one: possibly a rollback).
func precheck(b []byte) (metaDamaged bool, err error) {
	size := int64(len(b))
	if size == 0 {
		return false, errors.New("file is empty (0 bytes)")
	}
	m0, ok0 := readMeta(b)
	ps := int64(4096)
	if ok0 {
		ps = int64(m0.pageSize)
	}
	if ps < 1024 || ps > 1<<16 {
		return false, fmt.Errorf("meta page: page size %d", ps)
	}
	var m1 metaPage
	ok1 := false
	if size > ps {
		m1, ok1 = readMeta(b[ps:])
	}
	if ok1 && ok0 && m1.pageSize != m0.pageSize {
		return false, errors.New("meta pages disagree on the page size")
	}
	newest := m0
	switch {
	case !ok0 && !ok1:
		return false, errors.New("no valid meta page (not a bbolt file, or both overwritten)")
	case !ok0 || (ok1 && m1.txid > m0.txid):
		newest = m1
	}
	if newest.pgid < 4 || newest.pgid > uint64(size) || int64(newest.pgid)*ps > size {
		return false, fmt.Errorf("file of %d bytes is shorter than its %d pages of %d bytes (truncated)", size, newest.pgid, ps)
	}
	if err := checkFreelist(b, newest, ps); err != nil {
		return false, err
	}
	w := walker{b: b, ps: ps, pgid: newest.pgid, seen: map[uint64]bool{}}
	if err := w.page(newest.root, 0); err != nil {
		return false, fmt.Errorf("page tree: %w", err)
	}
	return !ok0 || !ok1, nil
}

// walker bounds-checks a bbolt page tree in memory.
type walker struct {
	b    []byte
	ps   int64
	pgid uint64
	seen map[uint64]bool
}

const (
	branchFlag = 0x01
	maxDepth   = 32
)

// page checks page id and everything below it.
func (w *walker) page(id uint64, depth int) error {
	if depth > maxDepth {
		return errors.New("tree too deep")
	}
	if id < 2 || id >= w.pgid {
		return fmt.Errorf("page %d outside 2..%d", id, w.pgid-1)
	}
	if w.seen[id] {
		return fmt.Errorf("page %d referenced twice", id)
	}
	w.seen[id] = true
	off := int64(id) * w.ps
	h := w.b[off : off+pageHeader]
	if binary.LittleEndian.Uint64(h) != id {
		return fmt.Errorf("page %d: header says page %d", id, binary.LittleEndian.Uint64(h))
	}
	overflow := uint64(binary.LittleEndian.Uint32(h[12:]))
	if id+overflow >= w.pgid {
		return fmt.Errorf("page %d: %d overflow pages past the end", id, overflow)
	}
	for o := id + 1; o <= id+overflow; o++ {
		if w.seen[o] {
			return fmt.Errorf("page %d referenced twice", o)
		}
		w.seen[o] = true
	}
	return w.node(w.b[off:off+int64(overflow+1)*w.ps], id, depth)
}

// node checks the branch or leaf page p (its header first), which is
// either a whole page span or an inline bucket's page.
func (w *walker) node(p []byte, id uint64, depth int) error {
	if len(p) < pageHeader {
		return fmt.Errorf("page %d: shorter than its header", id)
	}
	flags := binary.LittleEndian.Uint16(p[8:])
	count := int(binary.LittleEndian.Uint16(p[10:]))
	if pageHeader+count*leafElem > len(p) {
		return fmt.Errorf("page %d: %d elements do not fit", id, count)
	}
	for i := range count {
		at := pageHeader + i*leafElem
		e := p[at : at+leafElem]
		switch flags {
		case branchFlag:
			pos, ks := int(binary.LittleEndian.Uint32(e[0:])), int(binary.LittleEndian.Uint32(e[4:]))
			if !inside(len(p), at, pos, ks, 0) {
				return fmt.Errorf("page %d: element %d outside the page", id, i)
			}
			if err := w.page(binary.LittleEndian.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
		case leafFlag:
			ef := binary.LittleEndian.Uint32(e[0:])
			pos, ks, vs := int(binary.LittleEndian.Uint32(e[4:])), int(binary.LittleEndian.Uint32(e[8:])), int(binary.LittleEndian.Uint32(e[12:]))
			if !inside(len(p), at, pos, ks, vs) {
				return fmt.Errorf("page %d: element %d outside the page", id, i)
			}
			if ef&bucketFlag == 0 {
				continue
			}
			v := p[at+pos+ks : at+pos+ks+vs]
			if len(v) < 16 {
				return fmt.Errorf("page %d: bucket element %d of %d bytes", id, i, len(v))
			}
			if root := binary.LittleEndian.Uint64(v); root != 0 {
				if err := w.page(root, depth+1); err != nil {
					return err
				}
			} else if err := w.node(v[16:], id, depth+1); err != nil {
				return err
			}
		default:
			return fmt.Errorf("page %d: flags %#x (want a branch or leaf page)", id, flags)
		}
	}
	if flags == branchFlag && count == 0 {
		return fmt.Errorf("page %d: empty branch", id)
	}
	return nil
}

// inside reports whether key and value of the element at offset at (pos
// relative to it) lie within a page of n bytes.
func inside(n, at, pos, ks, vs int) bool {
	start := at + pos
	end := start + ks + vs
	return pos >= 0 && ks >= 0 && vs >= 0 && start >= at && end >= start && end <= n && ks+vs >= 0
}

// checkFreelist bounds the freelist page the newest meta page names: a
// freelist page inside the file, listing no more pages than the file has
// and fitting its own pages (bbolt would otherwise read past the mapped
// file or spend minutes on a forged count).
func checkFreelist(b []byte, m metaPage, ps int64) error {
	const noFreelist = 0xFFFFFFFFFFFFFFFF // NoFreelistSync
	if m.freelist == noFreelist {
		return nil
	}
	if m.freelist < 2 || m.freelist >= m.pgid {
		return fmt.Errorf("freelist page %d outside pages 2..%d", m.freelist, m.pgid-1)
	}
	h := b[int64(m.freelist)*ps:]
	const freelistFlag = 0x10
	if binary.LittleEndian.Uint16(h[8:]) != freelistFlag {
		return fmt.Errorf("freelist page %d has flags %#x", m.freelist, binary.LittleEndian.Uint16(h[8:]))
	}
	count := uint64(binary.LittleEndian.Uint16(h[10:]))
	overflow := uint64(binary.LittleEndian.Uint32(h[12:]))
	skip := uint64(0)
	if count == 0xFFFF { // the real count is the first element
		count, skip = binary.LittleEndian.Uint64(h[pageHeader:]), 1
	}
	if overflow >= m.pgid || m.freelist+overflow >= m.pgid {
		return fmt.Errorf("freelist page %d overflows past page %d", m.freelist, m.pgid)
	}
	if count > m.pgid || pageHeader+(count+skip)*8 > (overflow+1)*uint64(ps) {
		return fmt.Errorf("freelist of %d pages does not fit (file of %d pages)", count, m.pgid)
	}
	ids := h[pageHeader+skip*8:]
	for i := range count {
		if id := binary.LittleEndian.Uint64(ids[i*8:]); id < 2 || id >= m.pgid {
			return fmt.Errorf("freelist lists page %d outside 2..%d", id, m.pgid-1)
		}
	}
	return nil
}

// salvaged is what a raw scan of a damaged file found.
type salvaged struct {
	entries map[uint64]Entry
	session string
	seq     uint64 // highest "seq" meta value seen
}

// scanFile reads every page of a damaged bbolt file and collects what
// looks like outbox data: leaf elements with an 8-byte key whose value is
// a valid entry for that seq (DecodeEntry), the session and the seq
// counter of the meta bucket. It needs no valid tree: a damaged branch or
// meta page hides nothing that is still on disk. Pages bbolt freed may
// still hold entries that were acked; resending those is a duplicate the
// fleet drops, never a loss.
func scanFile(path string) (salvaged, error) {
	s := salvaged{entries: map[uint64]Entry{}}
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	ps := 4096
	if m, ok := readMeta(b); ok && m.pageSize >= 512 && m.pageSize <= 1<<16 {
		ps = int(m.pageSize)
	}
	sessions := map[string]int{}
	for off := 0; off+pageHeader <= len(b); off += ps {
		scanLeaf(b[off:], ps, &s, sessions, 0)
	}
	best := 0
	for id, n := range sessions {
		if n > best || (n == best && id > s.session) {
			s.session, best = id, n
		}
	}
	return s, nil
}

// scanLeaf decodes p as a leaf page (its header at p[0:16]) when it looks
// like one; inline buckets are scanned recursively (depth bounded).
func scanLeaf(p []byte, ps int, s *salvaged, sessions map[string]int, depth int) {
	if depth > 2 || len(p) < pageHeader || binary.LittleEndian.Uint16(p[8:]) != leafFlag {
		return
	}
	count := int(binary.LittleEndian.Uint16(p[10:]))
	overflow := int(binary.LittleEndian.Uint32(p[12:]))
	end := len(p)
	if depth == 0 {
		end = min(len(p), (overflow+1)*ps)
	}
	p = p[:end]
	if pageHeader+count*leafElem > len(p) {
		return
	}
	for i := range count {
		at := pageHeader + i*leafElem
		flags := binary.LittleEndian.Uint32(p[at:])
		pos := int(binary.LittleEndian.Uint32(p[at+4:]))
		ks := int(binary.LittleEndian.Uint32(p[at+8:]))
		vs := int(binary.LittleEndian.Uint32(p[at+12:]))
		k0 := at + pos
		if pos < 0 || ks < 0 || vs < 0 || k0 < at || k0+ks+vs > len(p) || k0+ks+vs < k0 {
			continue
		}
		k, v := p[k0:k0+ks], p[k0+ks:k0+ks+vs]
		if flags&bucketFlag != 0 {
			if len(v) > 16 && binary.LittleEndian.Uint64(v) == 0 { // inline bucket: header (root 0), then its page
				scanLeaf(v[16:], ps, s, sessions, depth+1)
			}
			continue
		}
		switch {
		case string(k) == string(keySession) && idRe.MatchString(string(v)):
			sessions[string(v)]++
		case string(k) == string(keySeq) && len(v) == 8:
			s.seq = max(s.seq, binary.BigEndian.Uint64(v))
		case len(k) == 8:
			seq := binary.BigEndian.Uint64(k)
			if e, err := DecodeEntry(seq, v); err == nil {
				s.entries[seq] = e
			}
		}
	}
}

// quarantineName returns <path>.corrupt-<unix seconds>, with -1, -2, ...
// appended when that exists: a file set aside is never overwritten.
func quarantineName(path string, now time.Time) string {
	base := path + ".corrupt-" + strconv.FormatInt(now.Unix(), 10)
	to := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			return to
		}
		to = base + "-" + strconv.Itoa(i)
	}
}

// keepAside links (or, where links are not possible, copies) the damaged
// file to its quarantine name; path itself is replaced afterwards by an
// atomic rename, so a crash in between leaves the damaged file in place
// (salvaged again at the next start), never no file.
func keepAside(path string, now time.Time) (string, error) {
	to := quarantineName(path, now)
	if err := os.Link(path, to); err == nil {
		return to, nil
	}
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return "", err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return "", err
	}
	return to, dst.Close()
}
