package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketRecords = []byte("records") // robot \x00 kind \x00 id -> Record JSON
	bucketStreams = []byte("streams") // robot \x00 outbox_session -> stream JSON
)

// Record is one result or event the fleet holds.
type Record struct {
	RobotID       string          `json:"robot_id"`
	Kind          string          `json:"kind"`
	Site          string          `json:"site,omitempty"`
	ID            string          `json:"id"` // result_id / event_id
	SlideID       string          `json:"slide_id,omitempty"`
	ResultID      string          `json:"result_id,omitempty"` // image: its result
	Event         string          `json:"event,omitempty"`
	OutboxSession string          `json:"outbox_session,omitempty"`
	Seq           uint64          `json:"outbox_seq,omitempty"`
	ReceivedAt    time.Time       `json:"received_at"`
	Copies        int             `json:"copies"` // how many times it arrived
	Envelope      json.RawMessage `json:"envelope"`
}

// Stream tracks one robot outbox session's sequence numbers (a Backend
// keeps one per robot and outbox_session).
type Stream struct {
	Contig uint64   `json:"contig"` // every seq <= Contig arrived (or was below the robot's floor)
	Above  []uint64 `json:"above"`  // seqs > Contig that arrived, sorted
	Max    uint64   `json:"max"`
}

// Gap is a run of sequence numbers missing from a robot's stream.
type Gap struct {
	Site, RobotID, OutboxSession string
	From, To                     uint64 // inclusive
}

// Store is a small Backend on a bbolt file (fsync on commit), for the
// robot's in-process simulator receiver; the fleet itself runs on
// papscan/fleet/store (PostgreSQL or SQLite). Images are kept as records
// with their message.
type Store struct{ db *bolt.DB }

// OpenStore opens or creates the store file.
func OpenStore(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("fleet store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRecords, bucketStreams} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("fleet store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func recordKey(robot, kind, id string) []byte {
	return []byte(robot + "\x00" + kind + "\x00" + id)
}

// Commit stores a batch in one transaction and updates the sequence
// tracking; refused messages without an ack key are not kept here.
func (s *Store) Commit(_ context.Context, batch []Item) (Committed, error) {
	var res Committed
	err := s.db.Update(func(tx *bolt.Tx) error {
		res = Committed{}
		recs := tx.Bucket(bucketRecords)
		strs := tx.Bucket(bucketStreams)
		streams := map[string]*Stream{}
		for _, in := range batch {
			if in.Kind == KindInvalid || in.ID == "" {
				continue
			}
			k := recordKey(in.RobotID, in.Kind, in.ID)
			if v := recs.Get(k); v != nil {
				res.Dups++
			} else {
				rec := in.Record()
				rec.Envelope = in.Raw
				b, _ := json.Marshal(rec)
				if err := recs.Put(k, b); err != nil {
					return err
				}
				rec.Envelope = nil
				res.Fresh = append(res.Fresh, rec)
			}
			if in.OutboxSession == "" || in.Seq == 0 {
				continue
			}
			sk := in.RobotID + "\x00" + in.OutboxSession
			st := streams[sk]
			if st == nil {
				st = &Stream{}
				if v := strs.Get([]byte(sk)); v != nil {
					_ = json.Unmarshal(v, st)
				}
				streams[sk] = st
			}
			st.Add(in.Seq, in.Floor)
		}
		for sk, st := range streams {
			b, _ := json.Marshal(st)
			if err := strs.Put([]byte(sk), b); err != nil {
				return err
			}
			robot, session, _ := cut(sk)
			if from, to, ok := st.Gap(); ok {
				res.Gaps = append(res.Gaps, Gap{RobotID: robot, OutboxSession: session, From: from, To: to})
			}
		}
		return nil
	})
	return res, err
}

// Record is the record an item becomes (Copies 1, Envelope not set).
func (in Item) Record() Record {
	return Record{
		RobotID: in.RobotID, Kind: in.Kind, Site: in.Site, ID: in.ID, SlideID: in.SlideID, ResultID: in.ResultID,
		Event: in.Event, OutboxSession: in.OutboxSession, Seq: in.Seq, ReceivedAt: in.ReceivedAt, Copies: 1,
	}
}

// StreamGap returns the first missing run of one stream.
func (s *Store) StreamGap(_ context.Context, robot, session string) (Gap, bool, error) {
	var g Gap
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStreams).Get([]byte(robot + "\x00" + session))
		if v == nil {
			return nil
		}
		var st Stream
		if err := json.Unmarshal(v, &st); err != nil {
			return err
		}
		var from, to uint64
		from, to, ok = st.Gap()
		g = Gap{RobotID: robot, OutboxSession: session, From: from, To: to}
		return nil
	})
	return g, ok, err
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// Add records that seq arrived, with the robot's floor at the time (every
// seq below floor was acked already).
func (st *Stream) Add(seq, floor uint64) {
	if floor > 0 && floor-1 > st.Contig {
		st.Contig = floor - 1 // the robot holds nothing below floor: acked already
	}
	st.Max = max(st.Max, seq)
	if seq > st.Contig {
		if i, found := slices.BinarySearch(st.Above, seq); !found {
			st.Above = slices.Insert(st.Above, i, seq)
		}
	}
	i := 0
	for i < len(st.Above) && st.Above[i] <= st.Contig+1 {
		st.Contig = max(st.Contig, st.Above[i])
		i++
	}
	st.Above = st.Above[i:]
}

// Gap returns the first missing run below the highest seq seen.
func (st *Stream) Gap() (from, to uint64, ok bool) {
	if len(st.Above) == 0 {
		return 0, 0, false
	}
	return st.Contig + 1, st.Above[0] - 1, true
}

// ErrStopList stops List early without error.
var ErrStopList = errors.New("stop")

// List calls fn for every record in key order (robot, kind, id); robot ""
// means every robot.
func (s *Store) List(robot string, fn func(Record) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		prefix := []byte(nil)
		if robot != "" {
			prefix = []byte(robot + "\x00")
		}
		for k, v := c.Seek(prefix); k != nil; k, v = c.Next() {
			if prefix != nil && (len(k) < len(prefix) || string(k[:len(prefix)]) != string(prefix)) {
				break
			}
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %q: %w", k, err)
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrStopList) {
		return nil
	}
	return err
}

// Gaps returns the missing runs the store knows of.
func (s *Store) Gaps() ([]Gap, error) {
	var out []Gap
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStreams).ForEach(func(k, v []byte) error {
			var st Stream
			if err := json.Unmarshal(v, &st); err != nil {
				return err
			}
			robot, session, _ := cut(string(k))
			if from, to, ok := st.Gap(); ok {
				out = append(out, Gap{RobotID: robot, OutboxSession: session, From: from, To: to})
			}
			return nil
		})
	})
	return out, err
}
