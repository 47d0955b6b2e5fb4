package store

import "context"

// ExecForTest runs a raw statement (tests: rolling a database back to an
// earlier schema version).
func (s *Store) ExecForTest(ctx context.Context, stmt string) error {
	_, err := s.db.ExecContext(ctx, stmt)
	return err
}
