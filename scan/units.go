package scan

import (
	"math"

	"periph.io/x/conn/v3/physic"
)

// um converts a distance to micrometres.
func um(d physic.Distance) float64 { return float64(d) / float64(physic.MicroMetre) }

// dist converts micrometres to a distance, rounded to the nanometre.
func dist(um float64) physic.Distance {
	return physic.Distance(math.Round(um * 1000))
}
