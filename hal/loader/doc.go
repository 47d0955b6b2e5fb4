// Package loader holds slide loaders. Manual is the loader of a robot
// without a magazine mechanism: the technician places one slide on the
// stage by hand and presses start.
package loader
