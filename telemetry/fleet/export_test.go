package fleet

import (
	"time"

	"papscan/telemetry"
)

// CommitForTest commits one synthetic result envelope.
func CommitForTest(s *Store, robot, session, id string, seq, floor uint64) error {
	_, err := s.commit([]incoming{{env: telemetry.Envelope{Schema: telemetry.Schema, Kind: telemetry.KindResult, RobotID: robot,
		SlideID: "S", ResultID: id, OutboxSession: session, OutboxSeq: seq, OutboxFloor: floor}, raw: []byte(`{}`), at: time.Now()}})
	return err
}
