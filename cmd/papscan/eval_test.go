package main

import (
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEvalUsage(t *testing.T) {
	if code, _, errs := runCmd(t, "eval"); code != exitUsage || !strings.Contains(errs, "--data") {
		t.Fatalf("eval without --data: code %d stderr %q", code, errs)
	}
	if code, _, errs := runCmd(t, "eval", "--data", filepath.Join(t.TempDir(), "nope")); code != exitFailure || !strings.Contains(errs, "not found") {
		t.Fatalf("missing dir: code %d stderr %q", code, errs)
	}
	if code, _, _ := runCmd(t, "eval", "--data", t.TempDir(), "--config", "nosuchprofile"); code != exitConfig {
		t.Fatalf("bad config: code %d", code)
	}
}

func TestEvalEmptyDirJSON(t *testing.T) {
	code, out, errs := runCmd(t, "eval", "--data", t.TempDir(), "--json")
	if code != exitOK {
		t.Fatalf("code %d stderr %q", code, errs)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v: %q", err, out)
	}
	if v["cells"] != nil {
		t.Errorf("cells %v, want null", v["cells"])
	}
	if val, ok := v["slides"]; !ok || val != nil {
		t.Errorf("slides = %v (present %v), want null", val, ok)
	}
	det := v["detection"].(map[string]any)
	for _, k := range []string{"isbi", "cric_abnormal_recall"} {
		if val, ok := det[k]; !ok || val != nil {
			t.Errorf("detection.%s = %v (present %v), want null", k, val, ok)
		}
	}
	model := v["model"].(map[string]any)
	if model["version"] == "" || len(model["sha256"].(string)) != 64 {
		t.Errorf("model %v", model)
	}
	if _, ok := v["seconds"].(float64); !ok {
		t.Errorf("seconds %v", v["seconds"])
	}
}

// TestEvalTinyData runs eval on a two-image ISBI-style set and a CRIC-style
// crop set built here: the keys are filled and the table is printed.
func TestEvalTinyData(t *testing.T) {
	dir := t.TempDir()
	isbi := filepath.Join(dir, "isbi2014", "images")
	cells := filepath.Join(dir, "cric", "cells", "HSIL")
	for _, d := range []string{isbi, cells} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	disc := func(w, h int, cx, cy, r float64) *image.RGBA {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := color.RGBA{235, 235, 240, 255}
				d2 := (float64(x)-cx)*(float64(x)-cx) + (float64(y)-cy)*(float64(y)-cy)
				if d2 <= 9*r*r {
					c = color.RGBA{175, 195, 210, 255} // cytoplasm
				}
				if d2 <= r*r {
					c = color.RGBA{70, 60, 120, 255}
				}
				img.SetRGBA(x, y, c)
			}
		}
		return img
	}
	save := func(p string, img image.Image) {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
	}
	save(filepath.Join(isbi, "EDF000.png"), disc(300, 300, 150, 150, 15))
	os.WriteFile(filepath.Join(dir, "isbi2014", "nuclei.csv"), []byte("image,nucleus_idx,x,y,area_px,gt_style\nEDF000.png,0,150,150,700,filled\n"), 0o644)
	save(filepath.Join(cells, "1.png"), disc(100, 100, 50, 50, 18))
	os.WriteFile(filepath.Join(dir, "cric", "cells", "labels.csv"), []byte("file,class,cell_id,image_filename\nHSIL/1.png,HSIL,1,f1.png\n"), 0o644)

	code, out, errs := runCmd(t, "eval", "--data", dir, "--json")
	if code != exitOK {
		t.Fatalf("code %d stderr %q", code, errs)
	}
	var v struct {
		Cells *struct {
			N int `json:"n"`
		} `json:"cells"`
		Detection struct {
			ISBI *struct {
				Precision, Recall, F1 float64
			} `json:"isbi"`
		} `json:"detection"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.Cells == nil || v.Cells.N != 1 {
		t.Errorf("cells %+v", v.Cells)
	}
	if v.Detection.ISBI == nil || v.Detection.ISBI.F1 != 1 {
		t.Errorf("isbi %+v", v.Detection.ISBI)
	}
	code, out, _ = runCmd(t, "eval", "--data", dir)
	if code != exitOK || !strings.Contains(out, "precision 1.000 recall 1.000 F1 1.000") || !strings.Contains(out, "cric/fields: skipped") {
		t.Errorf("table:\n%s", out)
	}
}
