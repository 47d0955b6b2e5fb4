package fleet

import (
	"context"
	"time"

	"papscan/telemetry"
)

// CommitForTest commits one synthetic result.
func CommitForTest(s *Store, robot, session, id string, seq, floor uint64) error {
	_, err := s.Commit(context.Background(), []Item{{Kind: telemetry.KindResult, RobotID: robot,
		SlideID: "S", ID: id, ResultID: id, OutboxSession: session, Seq: seq, Floor: floor, Raw: []byte(`{}`), ReceivedAt: time.Now()}})
	return err
}
