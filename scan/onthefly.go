package scan

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"time"

	"periph.io/x/conn/v3/physic"

	"papscan/classify"
	"papscan/hal"
)

// FlyOptions configure on-the-fly scanning (Options.Fly): the stage crosses
// each row of the tile plan at constant speed and a frame is taken each
// time it has moved one tile step.
type FlyOptions struct {
	// Enabled selects on-the-fly scanning; false is stop-and-go.
	Enabled bool
	// FrameRate is the camera's frame rate; the row speed is one tile
	// step per frame. Required.
	FrameRate float64
	// Exposure is the camera's exposure. With a strobe it is the window
	// the pulse must fall in; without one it is what freezes the motion.
	Exposure time.Duration
	// StrobePulse, above zero, flashes Machine.Light (a hal.Strobe) this
	// long once per frame while the steady light is off.
	StrobePulse time.Duration
	// FocusDither, above zero, tracks the focus along each row
	// (focustrack.go): consecutive frames are taken this many µm above
	// and below the predicted focus, and the sharpness of the strip two
	// frames share corrects the prediction. A tenth of the depth of field
	// is plenty. Zero: Z follows the focus map alone.
	FocusDither float64
}

// FlyStats are the on-the-fly figures of a slide (Report.Fly).
type FlyStats struct {
	Rows       int     `json:"rows"`
	Frames     int     `json:"frames"`      // frames taken on the fly
	Retakes    int     `json:"retakes"`     // tiles imaged again, stopped
	Dropped    int     `json:"dropped"`     // frames that never came (timeout) or came without the pulse
	Dark       int     `json:"dark"`        // frames without light
	OffPlace   int     `json:"off_place"`   // frames that landed off their tile
	BlurPx     float64 `json:"blur_px"`     // planned motion blur, pixels
	SpeedUMPS  float64 `json:"speed_um_s"`  // row speed
	MaxOffUM   float64 `json:"max_off_um"`  // largest |frame centre - tile centre| accepted
	TicDiffUM  float64 `json:"tic_diff_um"` // largest |plan - Tic read| at a frame
	RowSeconds float64 `json:"row_seconds"` // time on rows at cruise (first to last frame)
	// Registered is how many frames were registered on their
	// neighbour's overlap; RegMaxPx the largest disagreement found
	// between the registration and the positions from the motion plan.
	Registered int     `json:"registered"`
	RegMaxPx   float64 `json:"reg_max_px"`
	// Tracked is how many frame pairs corrected the focus on the fly,
	// TrackSkipped how many showed too little tissue; DitherUM the
	// dither of Z between frames.
	// AsyncDecode: the frames (MJPEG) were decoded off the capture
	// goroutine, each checked when its decode arrived.
	AsyncDecode  bool    `json:"async_decode"`
	Tracked      int     `json:"focus_tracked"`
	TrackSkipped int     `json:"focus_track_skipped"`
	DitherUM     float64 `json:"focus_dither_um"`
}

// regShiftPx is the registration search range, and regFaultPx the
// disagreement between registration and the planned positions that means
// the stage lost steps (its counted position is wrong from then on).
const (
	regShiftPx = 40
	regFaultPx = 4.0
)

// darkLevel: a frame whose mean green (sampled) is below this is dark: the
// light never came (a bright field is ~200, the densest tissue > 60).
const darkLevel = 25

// maxDarkRun is how many dark frames in a row make a light fault.
const maxDarkRun = 3

// flyRow is one row of the plan: tile indices in the order they are
// crossed, and the direction of travel along X (+1 or -1).
type flyRow struct {
	idx []int
	dir float64
}

// rowsOf splits a serpentine plan into its rows.
func rowsOf(plan TilePlan) []flyRow {
	var rows []flyRow
	for i, t := range plan.Tiles {
		if n := len(rows); n > 0 && plan.Tiles[rows[n-1].idx[0]].Y == t.Y {
			rows[n-1].idx = append(rows[n-1].idx, i)
			continue
		}
		rows = append(rows, flyRow{idx: []int{i}, dir: 1})
	}
	for k := range rows {
		if ix := rows[k].idx; len(ix) > 1 && plan.Tiles[ix[1]].X < plan.Tiles[ix[0]].X {
			rows[k].dir = -1
		}
	}
	return rows
}

// flyDevices are the devices on-the-fly scanning needs beyond stop-and-go.
type flyDevices struct {
	x      hal.SweepAxis
	timer  hal.FrameTimer
	strobe hal.Strobe // nil without a strobe
	z      starter    // nil: a focus that is set synchronously
	zPoll  hal.SweepAxis
}

func (s *Scanner) flyDevices() (flyDevices, error) {
	var d flyDevices
	var ok bool
	if d.x, ok = s.m.Stage.X.(hal.SweepAxis); !ok {
		return d, fmt.Errorf("on-the-fly scan: stage X %s cannot sweep (needs a Tic axis)", s.m.Stage.X)
	}
	if d.timer, ok = s.m.Camera.(hal.FrameTimer); !ok {
		return d, fmt.Errorf("on-the-fly scan: camera %s gives no frame timestamps", s.m.Camera)
	}
	if s.o.Fly.StrobePulse > 0 {
		if d.strobe, ok = s.m.Light.(hal.Strobe); !ok || s.m.Light == nil {
			return d, fmt.Errorf("on-the-fly scan: a strobe pulse is configured but the light is no strobe")
		}
	}
	if af, ok := s.m.Focus.(hal.AxisFocus); ok {
		d.z = af.Axis
		d.zPoll, _ = af.Axis.(hal.SweepAxis)
	}
	return d, nil
}

// captureOnTheFly images the plan row by row with the stage moving: the
// row speed is one tile step per frame; with a strobe each frame's light
// is one pulse fired as the stage crosses the tile's centre, timed inside
// the free-running camera's exposure from the frame timestamps. Each
// frame's position comes from the time of its light on the planned motion
// profile, checked against the Tic's position reads (the reads win when
// they disagree, as after a stall). Z follows the focus map from tile to
// tile. A frame that never came, came dark or without its pulse, or landed
// off its tile is taken again afterwards, stopped; dark frames in a row
// are a light fault. Analysis runs behind, as in stop-and-go.
func (s *Scanner) captureOnTheFly(ctx context.Context, r *Report, plan TilePlan, fm *FocusMap, summary *classify.SlideSummary, j *journal) error {
	dev, err := s.flyDevices()
	if err != nil {
		return err
	}
	fo := s.o.Fly
	iv := time.Duration(float64(time.Second) / fo.FrameRate)
	v := plan.StepX / iv.Seconds() // µm/s
	px := um(s.m.Camera.PixelSize())
	lit := fo.Exposure
	if fo.StrobePulse > 0 {
		lit = fo.StrobePulse
	}
	st := &FlyStats{SpeedUMPS: v, BlurPx: v * lit.Seconds() / px}
	r.Fly = st
	acc := s.o.Motion.X.Accel
	if !(acc > 0) {
		return errors.New("on-the-fly scan: the X acceleration is unknown (Options.Motion)")
	}
	if s.o.Motion.X.Speed > 0 && v > s.o.Motion.X.Speed*1.0001 {
		return fmt.Errorf("on-the-fly scan: row speed %.0f µm/s exceeds X's %.0f µm/s", v, s.o.Motion.X.Speed)
	}
	// The position reads before each frame take their time on the I²C
	// bus (~5 transfers per axis): pollCost is how long before a
	// crossing they must start, measured on the first row (until then a
	// guess) and grown with every slower poll seen later.
	pollCost := pollGuess
	ramp := v * v / (2 * acc) // µm to reach cruise from rest
	tRamp := v / acc          // s
	// runIn: cruise for 10 ms before the first frame, and at least long
	// enough for the reads before it to fall in the cruise.
	runIn := func() float64 { return ramp + v*max(0.010, (pollLead+2*pollCost).Seconds()) }
	offTol := 0.25 * (plan.FieldW - plan.StepX)
	if offTol <= 0 {
		offTol = 0.05 * plan.StepX
	}

	// The analysis pool, as in stop-and-go (one plane per tile).
	pool := s.newAnalysisPool(r, plan, 1, summary, j)
	defer pool.drain()
	getBuf := func() (*image.RGBA, error) {
		b, err := pool.get(ctx)
		if err != nil {
			return nil, err
		}
		return b[0], nil
	}
	put := func(img *image.RGBA) { pool.put([]*image.RGBA{img}) }
	submit := func(i int, x, y float64, img *image.RGBA) error {
		return pool.submit(ctx, i, x, y, []*image.RGBA{img})
	}

	var errSS float64
	var errN int
	focusErr := func(x, y, z float64) {
		if s.o.FocusTruth != nil {
			if zt, ok := s.o.FocusTruth(x, y); ok {
				errSS += (z - zt) * (z - zt)
				errN++
			}
		}
	}
	steady := func(on bool) error {
		if dev.strobe == nil || s.m.Light == nil {
			return nil
		}
		lvl := 0.0
		if on {
			lvl = 1
		}
		if err := s.m.Light.SetBrightness(lvl); err != nil {
			return hal.NewFault("light", hal.FaultLight, err)
		}
		return nil
	}
	darkRun := 0
	w, _ := s.m.Camera.Size()
	ovPx := int((plan.FieldW - plan.StepX) / px)
	var prevStrip, curStrip strip
	havePrev := false
	prevX := 0.0
	var trk *focusTracker
	if fo.FocusDither > 0 && ovPx >= 2*regShiftPx+32 {
		trk = newFocusTracker(fo.FocusDither, s.sharpWidth2(16*fo.FocusDither*fo.FocusDither))
		st.DitherUM = fo.FocusDither
	}
	// zAt is the focus for the row's next frame at x: the map, corrected
	// and dithered by the tracker.
	zAt := func(x, y float64) float64 {
		z := fm.Z(x, y)
		if trk != nil {
			c, d := trk.next(x)
			z += c + d
		}
		return z
	}
	var prevZ, prevS float64 // the previous frame's focus and its shared strip's sharpness
	lightFault := func(i int) error {
		return hal.NewFault("light", hal.FaultLight, fmt.Errorf("tile %d: %d frames in a row without light: the strobe never fired", i, darkRun))
	}

	// With an MJPEG camera that decodes off the capture goroutine
	// (hal.Grabber), a frame's image is waited for after the next frame
	// is taken: its decode overlaps that capture. The checks that need
	// the image (dark, registration) run in frame order in finish.
	var grabber hal.Grabber
	if g, ok := s.m.Camera.(hal.Grabber); ok && isMJPEG(s.m.Camera) {
		grabber = g
		st.AsyncDecode = true
	}
	var pend *flyFrame // a frame taken and placed, its image checks to come
	var retake []int
	// finish runs the image checks of frame f and hands it to the
	// analysis (or to a re-take).
	finish := func(f *flyFrame) error {
		img := f.img
		if f.grabbed != nil {
			dec, err := f.grabbed.Wait(ctx)
			if err != nil {
				f.grabbed.Release()
				if ctx.Err() != nil {
					return err
				}
				// A frame that does not decode is one that never came.
				s.log.Warn("frame not decoded on the fly; tile re-taken", "slide", r.SlideID, "tile", f.i, "err", err)
				st.Dropped++
				retake = append(retake, f.i)
				havePrev = false
				return nil
			}
			buf, err := getBuf()
			if err != nil {
				f.grabbed.Release()
				return err
			}
			if buf == nil || buf.Rect != dec.Rect {
				buf = image.NewRGBA(dec.Rect)
			}
			copy(buf.Pix, dec.Pix)
			f.grabbed.Release()
			img = buf
		}
		i, x, y, zNow := f.i, f.x, f.y, f.zNow
		if meanGreen(img) < darkLevel {
			put(img)
			st.Dark++
			darkRun++
			retake = append(retake, i)
			havePrev = false
			if darkRun >= maxDarkRun {
				_ = s.Halt()
				return lightFault(i)
			}
			return nil
		}
		darkRun = 0
		// Register the overlap with the previous frame of the row:
		// it sees what the plan and the Tic reads cannot, a stage
		// that lost steps.
		if ovPx >= 2*regShiftPx+32 {
			x0a, x0b := w-ovPx, 0
			if f.dir < 0 {
				x0a, x0b = 0, w-ovPx
			}
			cutStrip(&curStrip, img, x0b, ovPx)
			if havePrev && trk != nil {
				// Both frames' heights above the map where they
				// overlap.
				mb := fm.Z((prevX+x)/2, y)
				trk.observe(prevX, prevZ-mb, prevS, x, um(zNow)-mb, stripSharpness(&curStrip, trackMargin))
			}
			if havePrev {
				e := (x - prevX) / px // expected shift, px
				ei := math.Round(e)
				prevStrip.x0 -= int(ei)
				d, ok := registerStrips(&prevStrip, &curStrip, regShiftPx)
				prevStrip.x0 += int(ei)
				if ok {
					st.Registered++
					dev := d + ei - e
					st.RegMaxPx = math.Max(st.RegMaxPx, math.Abs(dev))
					if math.Abs(dev) > regFaultPx {
						put(img)
						_ = s.Halt()
						r.TilesMissing++
						return fmt.Errorf("tile %d: %w", i, hal.NewFault(s.m.Stage.X.String(), hal.FaultMotion,
							fmt.Errorf("image registration puts the stage %.1f µm from its planned and counted position: lost steps", -dev*px)))
					}
				}
			}
			cutStrip(&prevStrip, img, x0a, ovPx)
			havePrev, prevX = true, x
			if trk != nil {
				prevZ, prevS = um(zNow), stripSharpness(&prevStrip, trackMargin)
			}
		}
		focusErr(x, y, um(zNow))
		return submit(i, x, y, img)
	}
	flush := func() error {
		f := pend
		pend = nil
		if f == nil {
			return nil
		}
		return finish(f)
	}

	s.progress(Progress{SlideID: r.SlideID, Phase: "scan", Total: len(plan.Tiles)})
	phase0 := s.m.Clock.Now()
	rows := rowsOf(plan)
	st.Rows = len(rows)
	var travel time.Duration       // stage time on rows and between them, for the bound
	startCost := time.Duration(-1) // bus time of X's Start; < 0: not yet measured
	var prevEnd Point
	// turn is where the previous row's end already moved the stage and
	// the focus for this row (see below); nil: the row starts with a
	// move from rest.
	type turnTo struct{ x, y, z float64 }
	var turn *turnTo
	vModel := AxisModel{Speed: v, Accel: acc}
	var dbgMove, dbgAlign, dbgPre, dbgTurn, dbgRow time.Duration
	defer func() {
		s.log.Debug("fly phase", "move_s", dbgMove.Seconds(), "align_s", dbgAlign.Seconds(), "pre_s", dbgPre.Seconds(), "turn_s", dbgTurn.Seconds(), "rows_s", dbgRow.Seconds(), "travel_s", travel.Seconds())
	}()
	for ri, row := range rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		first, last := plan.Tiles[row.idx[0]], plan.Tiles[row.idx[len(row.idx)-1]]
		y := first.Y
		x0 := first.X - row.dir*runIn()
		xEnd := last.X + row.dir*(ramp+v*0.005)
		// The turn to the next row is flown: X runs on from the row's
		// last frame to the next row's start (when that lies ahead, the
		// row's move goes there without braking first) while Y steps
		// over and Z goes to the next row's focus (not with the focus
		// tracker, whose prediction needs the row's frames).
		turnNext := trk == nil && ri+1 < len(rows)
		if turnNext {
			nr := rows[ri+1]
			if nx0 := plan.Tiles[nr.idx[0]].X - nr.dir*runIn(); (nx0-xEnd)*row.dir > 0 {
				xEnd = nx0
			}
		}
		if trk != nil {
			trk.startRow()
		}
		z0 := zAt(first.X, y)
		rowPre := s.m.Clock.Now()
		turned := turn != nil
		if turned {
			// The previous row's end brought X here; Y and Z are on
			// their way (waited for once X has started the row).
			x0 = turn.x
			turn = nil
		} else {
			// Move to the row's start (stopped), with the steady light on.
			if ri > 0 {
				travel += max(s.o.Motion.X.MoveTime(x0-prevEnd.X)+s.o.Motion.X.Settle, s.o.Motion.Y.MoveTime(y-prevEnd.Y)+s.o.Motion.Y.Settle)
			}
			tm := s.m.Clock.Now()
			if err := s.moveXYZ(ctx, r, x0, y, z0); err != nil {
				return fmt.Errorf("row %d: %w", ri, err)
			}
			dbgMove += s.m.Clock.Now().Sub(tm)
		}
		// The stage stands on whole microsteps (5 µm on sim-fly), not
		// exactly at x0, y: the row is planned from, and its frames
		// placed at, where the Tics count it (else every frame of the
		// row shares the rounding, up to half a microstep).
		if turned {
			if p, err := s.m.Stage.X.Position(); err == nil {
				x0 = um(p)
			}
		} else {
			x0, y = s.standingXY(x0, y)
		}
		// The camera's frame grid, from its last frame.
		fi := dev.timer.LastFrame()
		if fi.Timestamp.IsZero() {
			b, err := getBuf()
			if err != nil {
				return err
			}
			b, err = s.capture(ctx, r, b)
			put(b)
			if err != nil {
				return fmt.Errorf("row %d: frame timing: %w", ri, err)
			}
			fi = dev.timer.LastFrame()
		}
		if err := steady(false); err != nil {
			return err
		}
		if !turned { // after a turn X's top speed is the row's still
			if err := dev.x.SetCruise(physic.Speed(v * float64(physic.MicroMetrePerSecond))); err != nil {
				return fmt.Errorf("row %d: %w", ri, err)
			}
		}
		// The Tic starts moving at the STOP of Start's last transfer, so
		// Start begins its bus time early (measured on the previous row,
		// or on the first by a Start to where the stage stands).
		if startCost < 0 {
			t0 := s.m.Clock.Now()
			if err := dev.x.Start(dist(x0)); err != nil {
				return fmt.Errorf("row %d: %w", ri, err)
			}
			startCost = s.m.Clock.Now().Sub(t0)
			if err := dev.x.Wait(ctx); err != nil {
				return fmt.Errorf("row %d: %w", ri, err)
			}
			if pollCost, err = pollTime(s.m.Clock, dev); err != nil {
				return fmt.Errorf("row %d: %w", ri, err)
			}
		}
		// Start so that the first tile is crossed in the middle of an
		// exposure: crossing = start + tRamp + (runIn - ramp)/v.
		lead := time.Duration((tRamp + (math.Abs(x0-first.X)-ramp)/v) * float64(time.Second))
		now := s.m.Clock.Now()
		want := now.Add(lead + startCost)
		if fo.StrobePulse > 0 {
			mid := fi.Timestamp.Add(fo.Exposure / 2)
			k := math.Ceil(float64(want.Sub(mid)) / float64(iv))
			want = mid.Add(time.Duration(k) * iv)
		}
		dbgAlign += want.Sub(now) - lead - startCost
		dbgPre += now.Sub(rowPre)
		if err := s.m.Clock.Sleep(ctx, want.Sub(now)-lead-startCost); err != nil {
			return err
		}
		t0 := s.m.Clock.Now()
		if err := dev.x.Start(dist(xEnd)); err != nil {
			return fmt.Errorf("row %d: %w", ri, err)
		}
		tStart := s.m.Clock.Now()
		startCost = tStart.Sub(t0)
		if turned {
			// Y's step and Z's move of the turn end during X's run-up
			// (the bound below has them by the first crossing); the rows'
			// frames are placed where Y's Tic counts it.
			if err := s.m.Stage.Y.Wait(ctx); err != nil {
				_ = dev.x.Halt()
				return fmt.Errorf("row %d: turn: %w", ri, err)
			}
			if p, err := s.m.Stage.Y.Position(); err == nil {
				y = um(p)
			}
			if dev.z != nil {
				if err := dev.z.Wait(ctx); err != nil {
					_ = dev.x.Halt()
					return fmt.Errorf("row %d: turn: focus: %w", ri, err)
				}
			}
		}
		planX := func(t time.Time) float64 {
			el := t.Sub(tStart).Seconds()
			d := 0.0
			switch {
			case el <= 0:
			case el < tRamp:
				d = acc * el * el / 2
			default:
				d = ramp + v*(el-tRamp)
			}
			return x0 + row.dir*d
		}
		crossAt := func(x float64) time.Time {
			d := (x - x0) * row.dir
			return tStart.Add(time.Duration((tRamp + (d-ramp)/v) * float64(time.Second)))
		}
		rowT0 := s.m.Clock.Now()
		abort := false
		havePrev = false
		for k, i := range row.idx {
			t := plan.Tiles[i]
			if abort {
				retake = append(retake, i)
				havePrev = false
				continue
			}
			if k > 0 {
				zt := zAt(t.X, y)
				if dev.z != nil {
					if err := dev.z.Start(dist(zt)); err != nil {
						return fmt.Errorf("tile %d: focus: %w", i, err)
					}
				} else if err := s.m.Focus.SetZ(ctx, dist(zt)); err != nil {
					return fmt.Errorf("tile %d: focus: %w", i, err)
				}
			}
			tc := crossAt(t.X)
			// A position read shortly before: it checks the plan (a
			// stalled stage is behind it) and feeds the dead-man. The
			// reads take their time on the bus and must end before tc.
			tPoll := s.m.Clock.Now()
			if d := tc.Add(-pollLead - pollCost).Sub(tPoll); d > 0 {
				if err := s.m.Clock.Sleep(ctx, d); err != nil {
					return err
				}
				tPoll = s.m.Clock.Now()
			}
			pos, _, err := dev.x.Poll()
			if err != nil {
				return fmt.Errorf("tile %d: %w", i, err)
			}
			tRead := s.m.Clock.Now() // the position is the poll's last read
			if dev.zPoll != nil {
				if _, _, err := dev.zPoll.Poll(); err != nil {
					return fmt.Errorf("tile %d: focus: %w", i, err)
				}
			}
			pollCost = max(pollCost, s.m.Clock.Now().Sub(tPoll))
			// Where the Tic says the stage is at tc, against the plan.
			ticAt := um(pos) + row.dir*v*tc.Sub(tRead).Seconds()
			diff := ticAt - planX(tc)
			st.TicDiffUM = math.Max(st.TicDiffUM, math.Abs(diff))
			trustTic := math.Abs(diff) > ticTolerance(s.o.Motion, v)
			if now := s.m.Clock.Now(); tc.After(now) {
				if err := s.m.Clock.Sleep(ctx, tc.Sub(now)); err != nil {
					return err
				}
			}
			tLight := s.m.Clock.Now()
			if dev.strobe != nil {
				if err := dev.strobe.Fire(ctx, fo.StrobePulse); err != nil {
					return fmt.Errorf("tile %d: %w", i, hal.NewFault("light", hal.FaultLight, err))
				}
				tLight = tLight.Add(fo.StrobePulse / 2)
			}
			zNow, _ := s.m.Focus.Z()
			var img *image.RGBA
			var grabbed hal.GrabbedFrame
			if grabber != nil {
				t0 := s.m.Clock.Now()
				grabbed, err = grabber.Grab(ctx)
				r.Timing.Capture += s.m.Clock.Now().Sub(t0)
				r.Frames++
			} else {
				buf, gerr := getBuf()
				if gerr != nil {
					return gerr
				}
				img, err = s.capture(ctx, r, buf)
				if err != nil {
					put(img)
				}
			}
			st.Frames++
			if err != nil {
				if err := flush(); err != nil {
					return err
				}
				if errors.Is(err, hal.ErrTimeout) && hal.FaultOf(err) == nil {
					// The frame never came: the stage has gone on; this
					// tile and the rest of the row are taken stopped. (A
					// camera that stays silent latches a camera fault,
					// which ends the slide.)
					s.log.Warn("frame dropped on the fly; tiles re-taken", "slide", r.SlideID, "tile", i, "err", err)
					st.Dropped++
					abort = true
					retake = append(retake, i)
					havePrev = false
					continue
				}
				r.TilesMissing++
				return fmt.Errorf("tile %d: capture: %w", i, err)
			}
			info := dev.timer.LastFrame()
			if grabbed != nil {
				info = grabbed.Info()
			}
			// The checks on the frame's time and place need no image;
			// the pending frame (if any) is finished first, so frames are
			// checked and counted in order.
			x := planX(tLight)
			if dev.strobe == nil {
				tLight = info.Timestamp.Add(fo.Exposure / 2)
				x = planX(tLight)
			}
			if trustTic {
				x = ticAt + row.dir*v*tLight.Sub(tc).Seconds()
			}
			rejected := ""
			if slack := 5 * time.Millisecond; dev.strobe != nil && (tLight.Before(info.Timestamp.Add(-slack)) || tLight.After(info.Timestamp.Add(fo.Exposure+slack))) {
				rejected = "pulse" // not the frame of the pulse
			} else if off := math.Abs(x - t.X); off > offTol {
				s.log.Warn("frame landed off its tile; re-taken", "slide", r.SlideID, "tile", i, "off_um", off)
				rejected = "off"
			} else {
				st.MaxOffUM = math.Max(st.MaxOffUM, off)
			}
			if err := flush(); err != nil {
				if grabbed != nil {
					grabbed.Release()
				} else {
					put(img)
				}
				return err
			}
			pend = &flyFrame{i: i, x: x, y: y, zNow: zNow, img: img, grabbed: grabbed, dir: row.dir}
			if rejected != "" {
				pend.release(put)
				pend = nil
				if rejected == "pulse" {
					st.Dropped++
				} else {
					st.OffPlace++
				}
				retake = append(retake, i)
				havePrev = false
				continue
			}
			if grabber == nil || trk != nil {
				// Decoded already (or the tracker needs the frame
				// before the next one is taken).
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if turnNext {
			// The row's frames are taken: X goes on to the next row's
			// start (its move is retargeted only when the row's end was
			// not there already), Y and Z start now.
			nr := rows[ri+1]
			nf := plan.Tiles[nr.idx[0]]
			nt := &turnTo{x: nf.X - nr.dir*runIn(), y: nf.Y, z: fm.Z(nf.X, nf.Y)}
			// Y, the longest, first.
			if err := s.m.Stage.Y.Start(dist(nt.y)); err != nil {
				_ = dev.x.Halt()
				return fmt.Errorf("row %d: turn: %w", ri, err)
			}
			if nt.x != xEnd {
				if err := dev.x.Start(dist(nt.x)); err != nil {
					_ = s.m.Stage.Y.Halt()
					return fmt.Errorf("row %d: turn: %w", ri, err)
				}
			}
			if dev.z != nil {
				if err := dev.z.Start(dist(nt.z)); err != nil {
					_ = dev.x.Halt()
					_ = s.m.Stage.Y.Halt()
					return fmt.Errorf("row %d: turn: %w", ri, err)
				}
			}
			// The stage's time: from the row's start to its last
			// crossing, then the turn (X braking on to the next start,
			// or past it and back, and Y's step, together).
			lastD := math.Abs(last.X-x0) - ramp
			travel += time.Duration((tRamp + lastD/v) * float64(time.Second))
			var xT time.Duration
			if ahead := (nt.x - last.X) * row.dir; ahead >= ramp {
				xT = time.Duration((tRamp + (ahead-ramp)/v) * float64(time.Second))
			} else {
				xT = time.Duration(tRamp*float64(time.Second)) + vModel.MoveTime(ramp-ahead)
			}
			// Y must have settled by the next row's first crossing, X's
			// run-up after the turn.
			runUp := time.Duration((tRamp + (runIn()-ramp)/v) * float64(time.Second))
			travel += max(xT+s.o.Motion.X.Settle, s.o.Motion.Y.MoveTime(nt.y-y)+s.o.Motion.Y.Settle-runUp)
			turn = nt
		}
		if err := flush(); err != nil {
			return err
		}
		st.RowSeconds += s.m.Clock.Now().Sub(rowT0).Seconds()
		tw := s.m.Clock.Now()
		dbgRow += tw.Sub(rowT0)
		if err := dev.x.Wait(ctx); err != nil {
			return fmt.Errorf("row %d: %w", ri, err)
		}
		if dev.z != nil && turn == nil {
			// The last focus move of the row ends here, so the Z axis
			// holds no move unattended (its dead-man). After a turn, the
			// next row waits for Z and Y as soon as it has started.
			if err := dev.z.Wait(ctx); err != nil {
				return fmt.Errorf("row %d: focus: %w", ri, err)
			}
		}
		if turn == nil {
			if err := dev.x.SetCruise(0); err != nil {
				return fmt.Errorf("row %d: %w", ri, err)
			}
		}
		if turn != nil && dev.z == nil {
			if err := s.m.Focus.SetZ(ctx, dist(turn.z)); err != nil {
				return fmt.Errorf("row %d: turn: focus: %w", ri, err)
			}
		}
		dbgTurn += s.m.Clock.Now().Sub(tw)
		if turn != nil {
			r.Timing.Motion += s.m.Clock.Now().Sub(tw)
			r.moves++
		}
		if err := steady(true); err != nil {
			return err
		}
		if turn == nil {
			// The stage's own time for the row: ramp, cruise, brake.
			travel += time.Duration((2*tRamp + (math.Abs(xEnd-x0)-2*ramp)/v) * float64(time.Second))
		}
		prevEnd = Point{xEnd, y}
	}
	// Re-takes, stopped, with the steady light.
	for _, i := range retake {
		t := plan.Tiles[i]
		st.Retakes++
		z := fm.Z(t.X, t.Y)
		if err := s.moveXYZ(ctx, r, t.X, t.Y, z); err != nil {
			r.TilesMissing++
			return fmt.Errorf("tile %d: re-take: %w", i, err)
		}
		buf, err := getBuf()
		if err != nil {
			return err
		}
		bufs := []*image.RGBA{buf}
		if err := s.captureStack(ctx, r, bufs, z); err != nil {
			put(bufs[0])
			r.TilesMissing++
			return fmt.Errorf("tile %d: re-take: %w", i, err)
		}
		if meanGreen(bufs[0]) < darkLevel {
			put(bufs[0])
			r.TilesMissing++
			return fmt.Errorf("tile %d: re-take: %w", i, hal.NewFault("light", hal.FaultLight, errors.New("a frame under steady light is dark")))
		}
		focusErr(t.X, t.Y, z)
		tx, ty := s.standingXY(t.X, t.Y)
		if err := submit(i, tx, ty, bufs[0]); err != nil {
			return err
		}
	}
	if trk != nil {
		st.Tracked, st.TrackSkipped = trk.used, trk.skipped
	}
	r.Timing.TilePhase = s.m.Clock.Now().Sub(phase0)
	if errN > 0 {
		r.Focus.ErrorRMS = math.Sqrt(errSS / float64(errN))
	}
	// The physical bound of the tile phase: the camera's frames or the
	// stage's travel, whichever is longer.
	r.lowerBound = max(time.Duration(len(plan.Tiles))*iv, travel)
	pool.drain()
	return nil
}

// standingXY is where the stopped stage stands after a move to (x, y):
// the Tics' counted positions, whole microsteps (5 µm on sim-fly), not
// the exact target; (x, y) when an axis cannot tell.
func (s *Scanner) standingXY(x, y float64) (float64, float64) {
	if p, err := s.m.Stage.X.Position(); err == nil {
		x = um(p)
	}
	if p, err := s.m.Stage.Y.Position(); err == nil {
		y = um(p)
	}
	return x, y
}

// pollLead is how long before a tile's crossing the position reads end
// (at the latest).
const pollLead = 2 * time.Millisecond

// pollGuess is the bus time of the position reads before it is measured
// (X and Z at 100 kHz take ~6 ms).
const pollGuess = 10 * time.Millisecond

// pollTime polls X once and returns how long the reads before a frame
// take on clock (the bus time): X's poll, twice when Z is polled too (the
// same reads; Z may stand idle past its command timeout here, which only
// a move clears).
func pollTime(clock hal.Clock, dev flyDevices) (time.Duration, error) {
	t0 := clock.Now()
	if _, _, err := dev.x.Poll(); err != nil {
		return 0, err
	}
	d := clock.Now().Sub(t0)
	if dev.zPoll != nil {
		d *= 2
	}
	return d, nil
}

// flyFrame is a frame taken on the fly whose image checks are to come:
// tile i imaged at (x, y) with the focus at zNow, on a row crossed in
// direction dir; its image decoded (img) or decoding (grabbed).
type flyFrame struct {
	i       int
	x, y    float64
	zNow    physic.Distance
	dir     float64
	img     *image.RGBA
	grabbed hal.GrabbedFrame
}

// release gives the frame's buffers back unused.
func (f *flyFrame) release(put func(*image.RGBA)) {
	if f.grabbed != nil {
		f.grabbed.Release()
		return
	}
	put(f.img)
}

// isMJPEG reports whether cam's frames arrive as MJPEG (their decode is
// worth taking off the capture goroutine).
func isMJPEG(cam hal.Camera) bool {
	src, ok := cam.(interface{ Source() hal.FrameSource })
	if !ok {
		return false
	}
	fourcc, _, _ := src.Source().Format()
	return fourcc == hal.PixFmtMJPEG
}

// ticTolerance is how far the plan and a Tic position read may disagree
// before the read is trusted: two microsteps of quantisation plus a
// millisecond of timing at speed v.
func ticTolerance(m MotionModel, v float64) float64 {
	return 2*m.XStepUM + v*0.001 + 1
}

// meanGreen is the mean green level of img on a sparse grid.
func meanGreen(img *image.RGBA) float64 {
	b := img.Bounds()
	var sum, n float64
	for y := b.Min.Y; y < b.Max.Y; y += 16 {
		row := img.Pix[(y-b.Min.Y)*img.Stride:]
		for x := 0; x < b.Dx(); x += 16 {
			sum += float64(row[x*4+1])
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / n
}
