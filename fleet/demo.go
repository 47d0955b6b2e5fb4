package fleet

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"time"

	"papscan/telemetry"
)

// Message is one MQTT publish of a simulated robot.
type Message struct {
	Topic   string
	Payload []byte
	ID      string // the ack key (result_id or image_id)
}

// DemoSlide describes one simulated slide result.
type DemoSlide struct {
	SlideID string
	Verdict string // HIGH_GRADE, LOW_GRADE, NILM, INCOMPLETE
	// Classes of the gallery cells, most suspicious first.
	Classes []string
}

// DemoSlides are the three slides of `make run`: one of each verdict.
var demoSlides = []DemoSlide{
	{"DEMO-0001", "HIGH_GRADE", []string{"HSIL", "HSIL", "ASC-H", "SCC", "HSIL", "LSIL"}},
	{"DEMO-0002", "LOW_GRADE", []string{"LSIL", "LSIL", "ASC-US", "LSIL", "ASC-US", "NILM"}},
	{"DEMO-0003", "NILM", []string{"NILM", "NILM", "NILM", "NILM"}},
}

// DemoSlides returns the three demonstration slides (HIGH_GRADE,
// LOW_GRADE, NILM).
func DemoSlides() []DemoSlide { return append([]DemoSlide(nil), demoSlides...) }

// cellSource gives crops for a class: real CRIC cells when the data is
// there (dataDir/cric/cells/<class>/*.png), drawn ones otherwise.
type cellSource struct {
	dir  string
	used map[string]int
	rng  *rand.Rand
}

func (c *cellSource) crop(class string) (image.Image, float64) {
	if c.dir != "" {
		files, _ := filepath.Glob(filepath.Join(c.dir, class, "*.png"))
		sort.Strings(files)
		if len(files) > 0 {
			i := c.used[class] % len(files)
			c.used[class]++
			if f, err := os.Open(files[(i*37)%len(files)]); err == nil {
				img, err := png.Decode(f)
				f.Close()
				if err == nil && img.Bounds().Dx() <= telemetry.MaxCropSide && img.Bounds().Dy() <= telemetry.MaxCropSide {
					return img, 0.25 // CRIC: 40x objective, ~0.25 µm/px
				}
			}
		}
	}
	return drawnCell(c.rng, class), 0.5
}

// drawnCell draws a Papanicolaou-stained cell: cytoplasm and a nucleus
// whose size and darkness grow with the grade.
func drawnCell(rng *rand.Rand, class string) image.Image {
	const n = 96
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	nuc := map[string]float64{"NILM": 5, "ASC-US": 8, "LSIL": 10, "ASC-H": 12, "HSIL": 14, "SCC": 16}[class]
	if nuc == 0 {
		nuc = 6
	}
	cx, cy := 48+rng.Float64()*6-3, 48+rng.Float64()*6-3
	for y := range n {
		for x := range n {
			dx, dy := float64(x)-cx, float64(y)-cy
			r := math.Hypot(dx, dy)
			c := color.RGBA{236, 232, 238, 255} // background
			if r < 40-nuc/2 {
				c = color.RGBA{200, 168, 200, 255} // cyanophilic/eosinophilic cytoplasm
			}
			if r < nuc*(1+0.12*math.Sin(3*math.Atan2(dy, dx))) {
				g := 0.5 + 0.5*rng.Float64()
				d := uint8(60 + 70*(1-nuc/16)*g)
				c = color.RGBA{d, d / 2, uint8(float64(d) * 1.3), 255}
			}
			img.Set(x, y, c)
		}
	}
	return img
}

// DemoRobot builds the messages a robot publishes for slides: each result
// (a scan report like scan.Report's) with its gallery crops and an
// overview, as durable outbox entries (outbox_session, seq). dataDir, if
// it holds cric/cells, gives real cells.
func DemoRobot(prefix, robot string, slides []DemoSlide, dataDir string, at time.Time) ([]Message, error) {
	src := &cellSource{used: map[string]int{}, rng: rand.New(rand.NewPCG(1, uint64(len(robot))))}
	if dataDir != "" {
		if st, err := os.Stat(filepath.Join(dataDir, "cric", "cells")); err == nil && st.IsDir() {
			src.dir = filepath.Join(dataDir, "cric", "cells")
		}
	}
	session := telemetry.NewID()
	var out []Message
	seq := uint64(0)
	for si, sl := range slides {
		resultID := telemetry.NewID()
		type cell struct {
			Class  string  `json:"class"`
			Score  float64 `json:"score"`
			StageX float64 `json:"stage_x_um"`
			StageY float64 `json:"stage_y_um"`
		}
		var top []cell
		for i, cl := range sl.Classes {
			score := map[string]float64{"SCC": 0.97, "HSIL": 0.94, "ASC-H": 0.88, "LSIL": 0.71, "ASC-US": 0.62, "NILM": 0.18}[cl] - 0.02*float64(i)
			a := float64(i)*2.4 + float64(si)
			top = append(top, cell{cl, max(0.01, score), 25000 + 4200*math.Cos(a)*float64(1+i%3)/3, 37500 + 4200*math.Sin(a)*float64(1+i%3)/3})
		}
		finished := at.Add(time.Duration(si) * 95 * time.Second)
		hg, lg := 0, 0
		for _, c := range top {
			switch c.Class {
			case "HSIL", "ASC-H", "SCC":
				hg++
			case "LSIL", "ASC-US":
				lg++
			}
		}
		body := map[string]any{
			"result_id": resultID, "slide_id": sl.SlideID, "robot_id": robot, "magazine": "M-DEMO", "slot": si,
			"verdict": sl.Verdict, "tiles_planned": 676, "tiles_captured": 676, "tiles_analysed": 676, "tiles_missing": 0,
			"focus":  map[string]any{"points": 25, "failed": 0, "error_rms_um": 0.21, "fit_rms_um": 0.17},
			"result": map[string]any{"verdict": sl.Verdict, "cells": 41230 + 977*si, "high_grade_cells": hg * 3, "low_grade_cells": lg * 4, "top": top, "model_version": "cnn-demo", "reason": fmt.Sprintf("%d high-grade and %d low-grade cells above the slide thresholds", hg*3, lg*4)},
			"timing": map[string]float64{"total": 95}, "started_at": finished.Add(-95 * time.Second), "finished_at": finished,
		}
		seq++
		env := telemetry.Envelope{Schema: telemetry.Schema, Kind: telemetry.KindResult, MessageID: telemetry.NewID(), RobotID: robot,
			SlideID: sl.SlideID, ResultID: resultID, OutboxSession: session, OutboxSeq: seq, OutboxFloor: 1, CommittedAt: finished, Attempt: 1}
		env.Body, _ = json.Marshal(body)
		b, err := json.Marshal(env)
		if err != nil {
			return nil, err
		}
		out = append(out, Message{Topic: prefix + "/" + robot + "/result/" + sl.SlideID, Payload: b, ID: resultID})
		of := len(top) + 1
		for i, c := range top {
			img, pix := src.crop(c.Class)
			m, err := telemetry.NewImage(robot, sl.SlideID, resultID, telemetry.ImageCrop, i, of, img, pix)
			if err != nil {
				return nil, err
			}
			m.Body.Score, m.Body.Class, m.Body.StageXUM, m.Body.StageYUM = c.Score, c.Class, c.StageX, c.StageY
			seq++
			m.MessageID, m.OutboxSession, m.OutboxSeq, m.OutboxFloor, m.Attempt = telemetry.NewID(), session, seq, 1, 1
			b, err := telemetry.EncodeImage(m)
			if err != nil {
				return nil, err
			}
			out = append(out, Message{Topic: telemetry.ImageTopic(prefix, robot, sl.SlideID), Payload: b, ID: m.ImageID})
		}
		ov, pix, ox, oy := demoOverview(sl.SlideID)
		m, err := telemetry.NewImage(robot, sl.SlideID, resultID, telemetry.ImageOverview, len(top), of, ov, pix)
		if err != nil {
			return nil, err
		}
		seq++
		m.Body.OriginXUM, m.Body.OriginYUM = ox, oy
		m.MessageID, m.OutboxSession, m.OutboxSeq, m.OutboxFloor, m.Attempt = telemetry.NewID(), session, seq, 1, 1
		b, err = telemetry.EncodeImage(m)
		if err != nil {
			return nil, err
		}
		out = append(out, Message{Topic: telemetry.ImageTopic(prefix, robot, sl.SlideID), Payload: b, ID: m.ImageID})
	}
	return out, nil
}

// demoOverview draws a slide overview: the stained spot on glass, 20 µm
// per pixel, origin at stage (15 mm, 27.5 mm). The robot's real overview
// (with legend and scale bar) replaces it.
func demoOverview(slide string) (image.Image, float64, float64, float64) {
	const w, h, pix = 1000, 1000, 20.0
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{244, 244, 246, 255}}, image.Point{}, draw.Src)
	rng := rand.New(rand.NewPCG(7, uint64(len(slide))))
	for y := range h {
		for x := range w {
			r := math.Hypot(float64(x-500), float64(y-500))
			if r < 330 {
				v := 0.84 + 0.1*math.Sin(float64(x)*0.05+3*math.Sin(float64(y)*0.03))*math.Cos(float64(y)*0.045)
				if rng.IntN(60) == 0 { // a cell cluster
					v -= 0.25
				}
				img.Set(x, y, color.RGBA{uint8(226 * v), uint8(196 * v), uint8(222 * v), 255})
			}
		}
	}
	// Scale bar: 5 mm.
	draw.Draw(img, image.Rect(40, 950, 40+250, 958), &image.Uniform{color.Black}, image.Point{}, draw.Src)
	return img, pix, 25000 - 500*pix, 37500 - 500*pix
}
