package loader

import (
	"context"

	"papscan/hal"
)

// Manual is a one-slot loader worked by hand: Load and Unload do nothing
// but record that the slide is (or is no longer) on the stage; the
// technician's start press is what says a slide is there.
type Manual struct {
	loaded bool
}

var _ hal.SlideLoader = (*Manual)(nil)

func (m *Manual) String() string { return "manual loader" }

// Slots implements hal.SlideLoader: one, the stage itself.
func (m *Manual) Slots() int { return 1 }

// Occupied implements hal.SlideLoader: the technician vouches for slot 0.
func (m *Manual) Occupied(slot int) (bool, error) { return slot == 0, nil }

// Load implements hal.SlideLoader.
func (m *Manual) Load(ctx context.Context, slot int) error {
	if slot != 0 {
		return hal.ErrNoSlide
	}
	m.loaded = true
	return ctx.Err()
}

// Unload implements hal.SlideLoader.
func (m *Manual) Unload(ctx context.Context) error {
	m.loaded = false
	return ctx.Err()
}
