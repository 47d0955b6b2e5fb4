// Package scan turns a slide in the magazine into a slide result: it loads
// the slide, homes and moves the stage, finds the cell spot, plans tiles with
// overlap along a serpentine path, builds a focus map from sparse contrast
// autofocus points, captures each tile at the mapped focus and hands it to
// the analysis (package classify) on worker goroutines while the stage moves
// on, and sums the tiles into a Report. Both capture loops (stop-and-go in
// tiles.go, on the fly in onthefly.go) feed one analysis pool
// (analysis.go): a bounded queue of recycled frame buffers and the workers
// that count each cell once and paste the overview.
//
// Tiles are imaged stop-and-go (move, settle, expose per tile) or, with
// Options.Fly, on the fly (onthefly.go): the stage crosses each row at one
// tile step per camera frame, a strobe pulse per frame freezes the motion,
// each frame's position comes from the time of its light on the planned
// motion, checked against the Tic's position reads and against the
// overlap with the previous frame (register.go); frames that did not come,
// came dark or landed off their tile are taken again, stopped. Between rows
// the turn is flown: after a row's last frame Y and Z start for the next
// row and X runs on to its start; the next row waits for Y and Z during its
// run-up. With
// FlyOptions.FocusDither (off in the shipped profiles), Z is dithered
// between neighbouring frames and the sharpness of the strip they share
// estimates the focus map's error there (focustrack.go); the next row is
// taken at the map plus those estimates.
//
// The focus map's points sit on specimen: where the overview shows it
// (focusplace.go), and, when a point's first frame shows bare glass, a
// field aside; that frame is the lower frame of the point's bracket. On
// the fly a bracket that finds the sharpness still rising climbs on through
// the focus range, and the magazine's first point (no surface to predict
// it) is a bracket at the nominal focus too.
//
// scan programs against the hal interfaces only; it never sees a concrete
// driver, so the same code scans on the robot and in simulation. Time is read
// from hal.Clock, so reported timings are machine time in both.
//
// A Report is data: the images of a slide (Report.Mosaic of the scanned
// tiles, the top cells' crops) are drawn and encoded by package render;
// render.WriteFiles stores them beside result.json (Report.WriteFiles).
//
// A slide that was not fully imaged (a tile missing, a fault, a cancelled
// context) is reported INCOMPLETE, never negative. Progress is journalled;
// after a restart an interrupted slide is reported INCOMPLETE for rerun and
// scanned again from its start (see Scanner.Magazine).
package scan
