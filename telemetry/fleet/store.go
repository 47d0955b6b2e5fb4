package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"papscan/telemetry"
)

var (
	bucketRecords = []byte("records") // robot \x00 kind \x00 id -> Record JSON
	bucketStreams = []byte("streams") // robot \x00 outbox_session -> stream JSON
)

// Record is one result or event the fleet holds.
type Record struct {
	RobotID       string          `json:"robot_id"`
	Kind          string          `json:"kind"`
	ID            string          `json:"id"` // result_id / event_id
	SlideID       string          `json:"slide_id,omitempty"`
	Event         string          `json:"event,omitempty"`
	OutboxSession string          `json:"outbox_session,omitempty"`
	Seq           uint64          `json:"outbox_seq,omitempty"`
	ReceivedAt    time.Time       `json:"received_at"`
	Copies        int             `json:"copies"` // how many times it arrived
	Envelope      json.RawMessage `json:"envelope"`
}

// stream tracks one robot outbox session's sequence numbers.
type stream struct {
	Contig uint64   `json:"contig"` // every seq <= Contig arrived (or was below the robot's floor)
	Above  []uint64 `json:"above"`  // seqs > Contig that arrived, sorted
	Max    uint64   `json:"max"`
}

// Gap is a run of sequence numbers missing from a robot's stream.
type Gap struct {
	RobotID, OutboxSession string
	From, To               uint64 // inclusive
}

// Store is the fleet's durable record (bbolt, fsync on commit).
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

// commitResult says what one commit did.
type commitResult struct {
	stored, dups int
	fresh        []Record            // the new records (without envelope)
	ack          map[string][]string // robot -> IDs to ack (new and duplicates)
	gaps         []Gap
}

func recordKey(robot, kind, id string) []byte {
	return []byte(robot + "\x00" + kind + "\x00" + id)
}

// commit stores a batch of envelopes in one transaction and updates the
// sequence tracking. Only envelopes it holds afterwards are acked.
func (s *Store) commit(batch []incoming) (commitResult, error) {
	res := commitResult{ack: map[string][]string{}}
	err := s.db.Update(func(tx *bolt.Tx) error {
		res = commitResult{ack: map[string][]string{}}
		recs := tx.Bucket(bucketRecords)
		strs := tx.Bucket(bucketStreams)
		streams := map[string]*stream{}
		for _, in := range batch {
			e := in.env
			id := e.ResultID
			if e.Kind == telemetry.KindEvent {
				id = e.EventID
			}
			k := recordKey(e.RobotID, e.Kind, id)
			if v := recs.Get(k); v != nil {
				var r Record
				if json.Unmarshal(v, &r) == nil {
					r.Copies++
					b, _ := json.Marshal(r)
					if err := recs.Put(k, b); err != nil {
						return err
					}
				}
				res.dups++
			} else {
				rec := Record{
					RobotID: e.RobotID, Kind: e.Kind, ID: id, SlideID: e.SlideID, Event: e.Event,
					OutboxSession: e.OutboxSession, Seq: e.OutboxSeq, ReceivedAt: in.at, Copies: 1, Envelope: in.raw,
				}
				b, _ := json.Marshal(rec)
				if err := recs.Put(k, b); err != nil {
					return err
				}
				rec.Envelope = nil
				res.fresh = append(res.fresh, rec)
				res.stored++
			}
			res.ack[e.RobotID] = append(res.ack[e.RobotID], id)
			if e.OutboxSession == "" || e.OutboxSeq == 0 {
				continue
			}
			sk := e.RobotID + "\x00" + e.OutboxSession
			st := streams[sk]
			if st == nil {
				st = &stream{}
				if v := strs.Get([]byte(sk)); v != nil {
					_ = json.Unmarshal(v, st)
				}
				streams[sk] = st
			}
			st.add(e.OutboxSeq, e.OutboxFloor)
		}
		for sk, st := range streams {
			b, _ := json.Marshal(st)
			if err := strs.Put([]byte(sk), b); err != nil {
				return err
			}
			robot, session, _ := cut(sk)
			if from, to, ok := st.gap(); ok {
				res.gaps = append(res.gaps, Gap{RobotID: robot, OutboxSession: session, From: from, To: to})
			}
		}
		return nil
	})
	return res, err
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func (st *stream) add(seq, floor uint64) {
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

// gap returns the first missing run below the highest seq seen.
func (st *stream) gap() (from, to uint64, ok bool) {
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
			var st stream
			if err := json.Unmarshal(v, &st); err != nil {
				return err
			}
			robot, session, _ := cut(string(k))
			if from, to, ok := st.gap(); ok {
				out = append(out, Gap{RobotID: robot, OutboxSession: session, From: from, To: to})
			}
			return nil
		})
	})
	return out, err
}
