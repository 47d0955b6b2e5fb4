package virtualslide

import (
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlips(t *testing.T) {
	const w, h = 5, 3
	seen := map[[4]int]bool{}
	for f := range Flip(NumFlips) {
		fw, fh := f.Size(w, h)
		// Pixel and Point agree: the centre of flipped pixel (i, j) maps to
		// the centre of the source pixel Pixel returns.
		for j := range fh {
			for i := range fw {
				si, sj := f.Pixel(i, j, w, h)
				if si < 0 || si >= w || sj < 0 || sj >= h {
					t.Fatalf("flip %d: pixel (%d,%d) -> (%d,%d) outside", f, i, j, si, sj)
				}
				x, y := f.Point(float64(si)+0.5, float64(sj)+0.5, w, h)
				if math.Abs(x-(float64(i)+0.5)) > 1e-9 || math.Abs(y-(float64(j)+0.5)) > 1e-9 {
					t.Fatalf("flip %d: Point(%d,%d) = %v,%v, want pixel %d,%d", f, si, sj, x, y, i, j)
				}
			}
		}
		a, b := f.Pixel(0, 0, w, h)
		c, d := f.Pixel(1, 0, w, h)
		seen[[4]int{a, b, c, d}] = true
	}
	if len(seen) != NumFlips {
		t.Errorf("%d distinct flips, want %d", len(seen), NumFlips)
	}
}

func testCatalog() []Field {
	var cat []Field
	for i := range 10 {
		cat = append(cat, Field{Name: "n" + string(rune('a'+i)), Nuclei: []Nucleus{{Class: NILM}}})
	}
	for i, w := range []Class{LSIL, ASCUS, HSIL, SCC, ASCH} {
		f := Field{Name: "a" + string(rune('a'+i)), Worst: w}
		for range 3 + 3*i {
			f.Nuclei = append(f.Nuclei, Nucleus{Class: w})
		}
		cat = append(cat, f)
	}
	return cat
}

func TestRecipe(t *testing.T) {
	cat := testCatalog()
	for _, k := range []Kind{Negative, LowGrade, HighGrade} {
		r, err := NewRecipe(cat, Options{Kind: k, Seed: 3, Uses: 45, MaxUsesPerField: 8})
		if err != nil {
			t.Fatal(err)
		}
		again, _ := NewRecipe(cat, Options{Kind: k, Seed: 3, Uses: 45, MaxUsesPerField: 8})
		if len(again.Uses) != len(r.Uses) {
			t.Fatal("not deterministic")
		}
		pairs := map[Use]int{}
		abn := 0
		for i, u := range r.Uses {
			if again.Uses[i] != u {
				t.Fatal("not deterministic")
			}
			f := cat[u.Field]
			if u.Abnormal {
				abn++
				if f.Worst.Grade() != k {
					t.Errorf("%v slide: abnormal field of worst class %v", k, f.Worst)
				}
				continue
			}
			if f.Worst != NILM {
				t.Errorf("%v slide: background field %s is %v", k, f.Name, f.Worst)
			}
			pairs[u]++
		}
		want := 0
		if k != Negative {
			want = 1
		}
		if abn != want || len(r.Uses) != 45+want {
			t.Errorf("%v slide: %d abnormal uses of %d, want %d of %d", k, abn, len(r.Uses), want, 45+want)
		}
		// 45 uses over 10 fields: 4 or 5 each, all under distinct flips.
		for i := range 10 {
			if n := r.Count(i); n < 4 || n > 5 {
				t.Errorf("field %d used %d times", i, n)
			}
		}
		for u, n := range pairs {
			if n > 1 {
				t.Errorf("field %d flip %d used %d times", u.Field, u.Flip, n)
			}
		}
	}
	// Bounded: at most MaxUsesPerField per field.
	r, _ := NewRecipe(cat, Options{Seed: 1, Uses: 1000, MaxUsesPerField: 3})
	if len(r.Uses) != 30 {
		t.Errorf("%d uses, want 10 fields x 3", len(r.Uses))
	}
	// A one-class slide and fold restriction.
	r, err := NewRecipe(cat, Options{Kind: HighGrade, Worst: SCC, Seed: 1, Uses: 5, Allow: func(f *Field) bool { return f.Name != "na" }})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range r.Uses {
		if u.Abnormal && cat[u.Field].Worst != SCC {
			t.Errorf("SCC slide carries %v", cat[u.Field].Worst)
		}
		if cat[u.Field].Name == "na" {
			t.Error("disallowed field used")
		}
	}
	if _, err := NewRecipe(cat, Options{Kind: LowGrade, Worst: HSIL}); err == nil {
		t.Error("low-grade slide with worst class HSIL accepted")
	}
	if _, err := NewRecipe(cat[10:], Options{}); err == nil {
		t.Error("recipe without NILM fields accepted")
	}
}

func TestParseNucleiErrors(t *testing.T) {
	good := "image_filename,bethesda_system,x_img,y_img\na.png,HSIL,1,2\na.png,Negative for intraepithelial lesion,3,4\n"
	fs, err := parseNuclei(strings.NewReader(good), "t")
	if err != nil || len(fs) != 1 || fs[0].Worst != HSIL || len(fs[0].Nuclei) != 2 {
		t.Fatalf("parse: %+v %v", fs, err)
	}
	for name, in := range map[string]string{
		"column": "image_filename,x_img,y_img\na.png,1,2\n",
		"class":  "image_filename,bethesda_system,x_img,y_img\na.png,AGC,1,2\n",
		"coord":  "image_filename,bethesda_system,x_img,y_img\na.png,HSIL,x,2\n",
		"name":   "image_filename,bethesda_system,x_img,y_img\n../a.png,HSIL,1,2\n",
	} {
		if _, err := parseNuclei(strings.NewReader(in), "t"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseNuclei(f *testing.F) {
	f.Add("image_filename,bethesda_system,x_img,y_img\na.png,HSIL,1,2\n")
	f.Add("image_filename,bethesda_system,x_img\n")
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := parseNuclei(strings.NewReader(s), "fuzz")
		if err != nil {
			return
		}
		for _, f := range fs {
			if f.Name == "" || len(f.Nuclei) == 0 {
				t.Fatalf("empty field %+v", f)
			}
		}
	})
}

// TestCutoutSynthetic: cells inside a field are kept with a feathered
// margin, material cut by the frame fades out, and nuclei at the frame are
// left out.
func TestCutoutSynthetic(t *testing.T) {
	const w, h = 200, 160
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	glass := color.RGBA{240, 242, 250, 255}
	disc := func(cx, cy, r float64, c color.RGBA) {
		for y := range h {
			for x := range w {
				if math.Hypot(float64(x)+0.5-cx, float64(y)+0.5-cy) <= r {
					img.SetRGBA(x, y, c)
				}
			}
		}
	}
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, glass)
		}
	}
	cyto, nuc := color.RGBA{220, 150, 130, 255}, color.RGBA{60, 50, 110, 255}
	disc(100, 80, 25, cyto) // a cell in the middle
	disc(100, 80, 5, nuc)
	disc(2, 80, 20, cyto) // a cell cut by the left edge
	disc(3, 80, 5, nuc)
	f := &Field{Name: "syn", PixelUM: 0.5, W: w, H: h, Nuclei: []Nucleus{{X: 100, Y: 80, Class: HSIL}, {X: 3, Y: 80}}}
	c, err := NewCutout(img, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nuclei) != 1 || c.Nuclei[0].Class != HSIL || c.Dropped != 1 {
		t.Fatalf("kept nuclei %+v, dropped %d", c.Nuclei, c.Dropped)
	}
	at := func(x, y int) []uint8 { return c.Factor[(y*w+x)*4:][:4] }
	if a := at(100, 80); a[3] != 255 || a[0] > 80 {
		t.Errorf("nucleus factor %v", a)
	}
	if a := at(100, 80-30); a[3] == 0 || a[3] == 255 { // in the glass margin: feathered
		t.Errorf("margin factor %v", a)
	}
	if a := at(100, 5); a[3] != 0 || a[0] != FactorOne {
		t.Errorf("far glass factor %v", a)
	}
	if a := at(3, 80); a[3] != 0 {
		t.Errorf("nucleus at the frame kept: %v", a)
	}
	if math.Abs(c.Glass[0]-240) > 2 || math.Abs(c.Glass[2]-250) > 2 {
		t.Errorf("glass %v", c.Glass)
	}
	im := c.Image(5, [3]uint8{240, 242, 250})
	if im.Bounds().Dx() != h || im.Bounds().Dy() != w {
		t.Errorf("transposed image %v", im.Bounds())
	}
}

func dataDir() string {
	if d := os.Getenv("PAPSCAN_DATA"); d != "" {
		return d
	}
	wd, _ := os.Getwd()
	for d := wd; ; d = filepath.Dir(d) {
		c := filepath.Join(d, "shared", "data")
		if _, err := os.Stat(filepath.Join(c, "cric")); err == nil {
			return c
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// TestCatalogCRIC: both folders load, every NILM-only field yields
// placeable material and keeps most of its labelled nuclei.
func TestCatalogCRIC(t *testing.T) {
	dir := dataDir()
	if dir == "" {
		t.Skip("shared data not found (set PAPSCAN_DATA)")
	}
	cat, err := LoadCatalog(dir)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	nilm, kept, dropped := 0, 0, 0
	for i := range cat {
		f := &cat[i]
		per[f.Folder]++
		if f.Worst != NILM {
			continue
		}
		nilm++
		if testing.Short() && nilm > 3 {
			continue
		}
		c, err := LoadCutout(dir, f)
		if err != nil {
			t.Fatal(err)
		}
		if c.W != int(float64(f.W)*f.PixelUM/CutoutPixelUM) || len(c.Pieces) == 0 {
			t.Errorf("%s/%s: %dx%d cut-out, %d pieces", f.Folder, f.Name, c.W, c.H, len(c.Pieces))
		}
		kept += len(c.Nuclei)
		dropped += c.Dropped
	}
	t.Logf("fields per folder %v; %d NILM-only; labelled nuclei kept %d, dropped %d", per, nilm, kept, dropped)
	if per["cric/fields"] == 0 || per["cric/more-fields"] == 0 || nilm < 20 {
		t.Errorf("catalogue: %v, %d NILM-only", per, nilm)
	}
	if kept < dropped {
		t.Errorf("kept %d labelled nuclei, dropped %d", kept, dropped)
	}
}

func BenchmarkCutout(b *testing.B) {
	dir := dataDir()
	if dir == "" {
		b.Skip("no data")
	}
	cat, _ := LoadCatalog(dir)
	f := &cat[0]
	for b.Loop() {
		if _, err := LoadCutout(dir, f); err != nil {
			b.Fatal(err)
		}
	}
}

func TestUsesForSpot(t *testing.T) {
	if n := UsesForSpot(13000); n != 624 {
		t.Errorf("13 mm spot: %d uses", n)
	}
	if n := UsesForSpot(1); n != 1 {
		t.Errorf("tiny spot: %d uses", n)
	}
}
