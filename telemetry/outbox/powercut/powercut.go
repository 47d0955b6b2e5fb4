package powercut

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"papscan/classify"
	"papscan/delivery"
	config "papscan/firmware-config"
	"papscan/scan"
	"papscan/telemetry"
	"papscan/telemetry/outbox"
	"papscan/telemetry/result"
)

// Console line prefixes the guest prints and Tally reads.
const (
	LineOpen      = "OPEN"      // OPEN boot=<n> depth=<n> damage=<none|text> check=<ok|text>
	LineCommitted = "COMMITTED" // COMMITTED <result_id> <images>: Deliver returned
	LineAcked     = "ACKED"     // ACKED <id>: Outbox.Ack returned
	LineHeld      = "HELD"      // HELD <kind> <id> <result_id>: an outbox entry (Verify)
	LineFile      = "FILE"      // FILE <result_id> <images>: a sound result.json and its images (Verify)
	LineCorrupt   = "CORRUPT"   // CORRUPT <what>: a file that does not read back (Verify)
	LineDone      = "POWERCUT-DONE"
	LineDelivered = "DELIVERED" // DELIVERED depth=<n> in=<duration>: the fleet acked everything (Send)
)

// Options of a guest run.
type Options struct {
	// StateDir is the agent's state directory on the disk under test.
	StateDir string
	// Boot numbers this boot (result IDs carry it, so they are unique
	// across boots).
	Boot int
	// Max bounds the results Commit delivers (0: no bound).
	Max int
	// Out receives the console lines.
	Out io.Writer
	// Log receives the delivery's log.
	Log *slog.Logger
	// Broker is the MQTT broker URL Send delivers to; empty: one that is
	// never reachable (Commit, Verify).
	Broker string
	// AckKey is the fleet receiver's public key ("<id>:<base64>",
	// agent.mqtt.ack_keys) that signs its acks.
	AckKey string
}

// open opens the agent's delivery link on the state directory the way
// the agent does (outbox checks, recovery, Rederive), with a broker that
// is never reachable, and prints the OPEN line.
func open(ctx context.Context, o Options) (*delivery.Link, error) {
	cfg := config.Default()
	cfg.Agent.StateDir = o.StateDir
	cfg.Agent.RobotID = "powercut"
	if o.AckKey != "" {
		cfg.Agent.MQTT.AckKeys = []string{o.AckKey}
	}
	if err := os.MkdirAll(o.StateDir, 0o750); err != nil {
		return nil, err
	}
	lk, err := delivery.OpenWith(ctx, cfg, []string{cmpOr(o.Broker, "tcp://127.0.0.1:9")}, o.Log,
		func(t *telemetry.Options) { t.Background = true },
		func(ob *outbox.Options) { ob.MinFreeBytes = 4 << 20 })
	if err != nil {
		return nil, err
	}
	ob := lk.Outbox()
	damage, check := "none", "ok"
	if d := ob.Damage(); d != nil {
		damage = oneLine(d.Error())
	}
	if err := ob.Check(); err != nil {
		check = oneLine(err.Error())
	}
	fmt.Fprintf(o.Out, "%s boot=%d depth=%d damage=%s check=%s\n", LineOpen, o.Boot, ob.Depth(), damage, check)
	return lk, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), "_") }

// ResultID is the result ID of the i-th result of a boot.
func ResultID(boot, i int) string { return fmt.Sprintf("pc%04d-%06d", boot, i) }

// report builds a slide report with two gallery crops (so Deliver stores
// and commits images as after a real slide).
func report(boot, i int) *scan.Report {
	r := &scan.Report{SlideID: fmt.Sprintf("P%04d-S%02d", boot, i%100), ResultID: ResultID(boot, i), Verdict: "NILM"}
	r.Result.Cells = 1000 + i
	for k := range 2 {
		crop := image.NewRGBA(image.Rect(0, 0, 48, 48))
		for p := range crop.Pix {
			crop.Pix[p] = uint8(p*(k+3) + i)
		}
		r.Result.Top = append(r.Result.Top, classify.Cell{Crop: crop, Score: 0.5 - float32(k)/10, Class: classify.NILM, StageX: float64(100 * i), StageY: float64(k)})
	}
	return r
}

// Commit opens the outbox through the agent's delivery path and delivers
// results until ctx ends or Max is reached, printing COMMITTED after each
// Deliver returned (result.json, its images and the outbox entries are
// durable then). Every fourth result, the results delivered four earlier
// are acked (as the fleet's ack would) and printed ACKED, so the file
// also frees and reuses pages.
func Commit(ctx context.Context, o Options) error {
	lk, err := open(ctx, o)
	if err != nil {
		return err
	}
	defer lk.Close(ctx)
	d := &delivery.Delivery{StateDir: o.StateDir, Link: lk, Log: o.Log}
	for i := 0; o.Max == 0 || i < o.Max; i++ {
		if ctx.Err() != nil {
			return nil
		}
		r := report(o.Boot, i)
		if err := d.Deliver(ctx, r); err != nil {
			return fmt.Errorf("deliver %s: %w", r.ResultID, err)
		}
		fmt.Fprintf(o.Out, "%s %s %d\n", LineCommitted, r.ResultID, len(r.Result.Top))
		if i >= 4 && i%4 == 0 {
			old := ResultID(o.Boot, i-4)
			ids := []string{old}
			for k := range 2 {
				ids = append(ids, fmt.Sprintf("%s.img%02d", old, k))
			}
			if _, err := lk.Outbox().Ack(ids...); err != nil {
				return fmt.Errorf("ack %s: %w", old, err)
			}
			for _, id := range ids {
				fmt.Fprintf(o.Out, "%s %s\n", LineAcked, id)
			}
		}
	}
	return nil
}

// Send opens the outbox as Commit does, with o.Broker reachable, and
// waits until the outbox is empty (the fleet acked every entry, with acks
// signed by o.AckKey's receiver) or ctx ends, then prints LineDelivered.
func Send(ctx context.Context, o Options) error {
	lk, err := open(ctx, o)
	if err != nil {
		return err
	}
	defer lk.Close(ctx)
	d := &delivery.Delivery{StateDir: o.StateDir, Link: lk, Log: o.Log}
	start := time.Now()
	for {
		// Flush fails at once while the broker is not connected (the
		// link connects in the background): try again until ctx ends.
		err := d.Flush(ctx)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("outbox not emptied: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Fprintf(o.Out, "%s depth=%d in=%v\n", LineDelivered, d.Depth(), time.Since(start).Round(time.Millisecond))
	return nil
}

// Expected returns what Commit delivered under result ID id: the result
// message's body (as the fleet stores it, compacted) and the gallery
// crops, in order. The reports are a function of the ID, so the host
// can check the fleet's copy without trusting the guest's files.
func Expected(id string) (body []byte, crops []*image.RGBA, err error) {
	var boot, i int
	if _, err := fmt.Sscanf(id, "pc%04d-%06d", &boot, &i); err != nil || ResultID(boot, i) != id {
		return nil, nil, fmt.Errorf("result ID %q: not one of Commit's", id)
	}
	r := report(boot, i)
	if body, err = json.Marshal(result.FromReport(r)); err != nil {
		return nil, nil, err
	}
	for _, c := range r.Result.Top {
		crops = append(crops, c.Crop)
	}
	return body, crops, nil
}

// Verify opens the outbox as Commit does, then lists every outbox entry
// (HELD), every sound result.json with its stored images (FILE) and every
// file that does not read back (CORRUPT), and prints LineDone.
func Verify(ctx context.Context, o Options) error {
	lk, err := open(ctx, o)
	if err != nil {
		return err
	}
	defer lk.Close(ctx)
	ob := lk.Outbox()
	var after uint64
	for {
		es, err := ob.Pending(after, 500)
		if err != nil {
			fmt.Fprintf(o.Out, "%s outbox %s\n", LineCorrupt, oneLine(err.Error()))
			break
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			fmt.Fprintf(o.Out, "%s %s %s %s\n", LineHeld, e.Kind, e.ID, cmpOr(e.ResultID, e.ID))
			after = e.Seq
		}
	}
	slides := filepath.Join(o.StateDir, "slides")
	sds, err := os.ReadDir(slides)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, sd := range sds {
		rds, err := os.ReadDir(filepath.Join(slides, sd.Name()))
		if err != nil {
			fmt.Fprintf(o.Out, "%s dir %s %s\n", LineCorrupt, sd.Name(), oneLine(err.Error()))
			continue
		}
		for _, rd := range rds {
			dir := filepath.Join(slides, sd.Name(), rd.Name())
			n, err := checkResultDir(dir, sd.Name(), rd.Name())
			switch {
			case errors.Is(err, fs.ErrNotExist):
				// no result.json: Deliver never returned for it
			case err != nil:
				fmt.Fprintf(o.Out, "%s %s %s\n", LineCorrupt, rd.Name(), oneLine(err.Error()))
			default:
				fmt.Fprintf(o.Out, "%s %s %d\n", LineFile, rd.Name(), n)
			}
		}
	}
	fmt.Fprintln(o.Out, LineDone)
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkResultDir reads back a result directory: result.json (naming its
// directory's IDs), images.json and each stored image (a PNG of the
// stated size). It returns the number of images.
func checkResultDir(dir, slide, result string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		return 0, err
	}
	var head struct {
		SlideID  string `json:"slide_id"`
		ResultID string `json:"result_id"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return 0, fmt.Errorf("result.json: %w", err)
	}
	if head.SlideID != slide || head.ResultID != result {
		return 0, fmt.Errorf("result.json names %s/%s", head.SlideID, head.ResultID)
	}
	mb, err := os.ReadFile(filepath.Join(dir, "images.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var msgs []telemetry.ImageMessage
	if err := json.Unmarshal(mb, &msgs); err != nil {
		return 0, fmt.Errorf("images.json: %w", err)
	}
	for _, m := range msgs {
		f, err := os.Open(filepath.Join(dir, "images", m.ImageID+".png"))
		if err != nil {
			return 0, err
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("image %s: %w", m.ImageID, err)
		}
		if b := img.Bounds(); b.Dx() != m.Body.Width || b.Dy() != m.Body.Height {
			return 0, fmt.Errorf("image %s: %dx%d, manifest says %dx%d", m.ImageID, b.Dx(), b.Dy(), m.Body.Width, m.Body.Height)
		}
	}
	return len(msgs), nil
}

// Figures are what Tally found in the consoles of a power-cut run.
type Figures struct {
	Cuts      int // boots killed
	Opens     int // OPEN lines (every boot, the verifying one included)
	Committed int // results reported committed (COMMITTED lines)
	Acked     int // results acked before a cut
	Found     int // committed results found held or acked, with a sound result.json
	Images    int // images of committed, unacked results found held
	Damaged   int // opens that found the outbox damaged
	CheckFail int // opens whose Check failed
	Corrupt   int // CORRUPT lines at the verifying boot
	Missing   []string
	// Unacked are the committed results found that no ACKED line took
	// out of the outbox: what the delivering boot must bring to the
	// fleet (acked ones stood for a fleet that already had them).
	Unacked []string
	// Delivered counts the Unacked results the host found in the fleet's
	// store with the expected content and images (-1: no delivering boot).
	Delivered int
}

func (f Figures) String() string {
	s := fmt.Sprintf("cuts %d, opens %d, results reported committed %d (acked %d), found %d, images found %d, damaged opens %d, Check failures %d, corrupt files %d, missing %d",
		f.Cuts, f.Opens, f.Committed, f.Acked, f.Found, f.Images, f.Damaged, f.CheckFail, f.Corrupt, len(f.Missing))
	if f.Delivered >= 0 {
		s += fmt.Sprintf(", delivered to the fleet %d of %d unacked", f.Delivered, len(f.Unacked))
	}
	return s
}

// Tally reads the consoles of the killed boots (cuts) and of the
// verifying boot and checks them: every result reported COMMITTED is
// held by the outbox (or was acked) and has a sound result.json, every
// image of an unacked one is held, every open found the outbox sound and
// Check passing, and nothing is corrupt. The error lists what failed.
func Tally(cuts []string, verify string) (Figures, error) {
	f := Figures{Delivered: -1}
	f.Cuts = len(cuts)
	committed := map[string]int{} // result ID -> images
	acked := map[string]bool{}
	var order []string
	var problems []string
	scanLines := func(s string, each func(fields []string)) {
		sc := bufio.NewScanner(strings.NewReader(s))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimSpace(strings.ReplaceAll(sc.Text(), "\r", ""))
			// The kernel may interleave its messages: look for our prefix anywhere.
			for _, p := range []string{LineOpen + " ", LineCommitted + " ", LineAcked + " ", LineHeld + " ", LineFile + " ", LineCorrupt + " ", LineDone} {
				if i := strings.Index(line, p); i >= 0 {
					each(strings.Fields(line[i:]))
					break
				}
			}
		}
	}
	open := func(fields []string) {
		if fields[0] != LineOpen {
			return
		}
		f.Opens++
		for _, kv := range fields[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch {
			case k == "damage" && v != "none":
				f.Damaged++
				problems = append(problems, "damaged open: "+v)
			case k == "check" && v != "ok":
				f.CheckFail++
				problems = append(problems, "check failed: "+v)
			}
		}
	}
	for _, c := range cuts {
		scanLines(c, func(fl []string) {
			switch fl[0] {
			case LineOpen:
				open(fl)
			case LineCommitted:
				if len(fl) >= 3 {
					n, _ := strconv.Atoi(fl[2])
					if _, dup := committed[fl[1]]; !dup {
						order = append(order, fl[1])
					}
					committed[fl[1]] = n
				}
			case LineAcked:
				if len(fl) >= 2 {
					acked[fl[1]] = true
				}
			}
		})
	}
	held := map[string]bool{}
	files := map[string]int{}
	done := false
	scanLines(verify, func(fl []string) {
		switch fl[0] {
		case LineOpen:
			open(fl)
		case LineHeld:
			if len(fl) >= 3 {
				held[fl[2]] = true
			}
		case LineFile:
			if len(fl) >= 3 {
				files[fl[1]], _ = strconv.Atoi(fl[2])
			}
		case LineCorrupt:
			f.Corrupt++
			problems = append(problems, strings.Join(fl, " "))
		case LineDone:
			done = true
		}
	})
	if !done {
		problems = append(problems, "the verifying boot did not finish ("+LineDone+" missing)")
	}
	f.Committed = len(committed)
	for _, id := range order {
		n := committed[id]
		if acked[id] {
			f.Acked++
		}
		nf, file := files[id]
		if !(held[id] || acked[id]) || !file || nf != n {
			f.Missing = append(f.Missing, id)
			continue
		}
		f.Found++
		if acked[id] {
			continue
		}
		f.Unacked = append(f.Unacked, id)
		for k := range n {
			if img := fmt.Sprintf("%s.img%02d", id, k); held[img] {
				f.Images++
			} else {
				problems = append(problems, "image "+img+" of a committed result not held")
			}
		}
	}
	if f.Opens != len(cuts)+1 {
		problems = append(problems, fmt.Sprintf("%d OPEN lines for %d boots", f.Opens, len(cuts)+1))
	}
	if len(f.Missing) > 0 {
		problems = append(problems, fmt.Sprintf("%d committed results missing: %s", len(f.Missing), strings.Join(f.Missing[:min(10, len(f.Missing))], " ")))
	}
	slices.Sort(problems)
	if len(problems) > 0 {
		return f, errors.New(strings.Join(slices.Compact(problems), "; "))
	}
	return f, nil
}
