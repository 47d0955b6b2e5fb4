package result_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"papscan/classify"
	"papscan/scan"
	"papscan/telemetry/result"
)

const schemaDir = "../../docs/schemas"

func loadSchemaDoc(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(schemaDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

// TestSchemaMatchesGoType fails when result.Message and
// docs/schemas/result-body.json drift apart: every struct of the type
// must be a closed object in the schema with the same property names, and
// its required properties are exactly the fields without omitempty.
func TestSchemaMatchesGoType(t *testing.T) {
	doc := loadSchemaDoc(t, "result-body.json")
	defs, _ := doc["$defs"].(map[string]any)
	resolve := func(s map[string]any) map[string]any {
		for {
			ref, ok := s["$ref"].(string)
			if !ok {
				return s
			}
			name, ok := strings.CutPrefix(ref, "#/$defs/")
			if !ok {
				return s // another file (common.json): a scalar
			}
			s, _ = defs[name].(map[string]any)
		}
	}
	var check func(path string, typ reflect.Type, s map[string]any)
	check = func(path string, typ reflect.Type, s map[string]any) {
		s = resolve(s)
		switch typ.Kind() {
		case reflect.Pointer:
			check(path, typ.Elem(), s)
			return
		case reflect.Slice:
			if typ.Elem().Kind() == reflect.Struct {
				if s["type"] != "array" {
					t.Errorf("%s: schema type %v, want array", path, s["type"])
					return
				}
				items, _ := s["items"].(map[string]any)
				check(path+"[]", typ.Elem(), items)
			}
			return
		case reflect.Struct:
			if typ == reflect.TypeOf(time.Time{}) {
				return
			}
		default:
			return
		}
		if s["type"] != "object" || s["additionalProperties"] != false {
			t.Errorf("%s (%s): schema must be a closed object (type object, additionalProperties false)", path, typ)
			return
		}
		props, _ := s["properties"].(map[string]any)
		var fields, required []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			fields = append(fields, name)
			if !strings.Contains(opts, "omitempty") {
				required = append(required, name)
			}
			sub, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("%s.%s (Go %s.%s): not in the schema", path, name, typ.Name(), f.Name)
				continue
			}
			check(path+"."+name, f.Type, sub)
		}
		for name := range props {
			if !slices.Contains(fields, name) {
				t.Errorf("%s.%s: in the schema, not in Go %s", path, name, typ.Name())
			}
		}
		var req []string
		for _, r := range s["required"].([]any) {
			req = append(req, r.(string))
		}
		slices.Sort(req)
		slices.Sort(required)
		if !slices.Equal(req, required) {
			t.Errorf("%s: schema requires %v, Go always writes %v", path, req, required)
		}
	}
	check("body", reflect.TypeOf(result.Message{}), doc)
	if v, _ := doc["properties"].(map[string]any)["schema_version"].(map[string]any)["const"].(float64); int(v) != result.Version {
		t.Errorf("schema_version const %v, Go Version %d", v, result.Version)
	}
}

func sampleReport() *scan.Report {
	start := time.Date(2026, 11, 21, 7, 40, 0, 0, time.UTC)
	c := classify.Cell{Class: classify.Class(1), Score: 0.93, StageX: 40100, StageY: 15050, Tile: 7}
	c.X, c.Y, c.AreaUM2 = 120, 88, 61.5
	return &scan.Report{
		ResultID: "r-1", SlideID: "M0001-S03", RobotID: "robot-07", Magazine: "M0001", Slot: 3,
		Label: scan.Label{Read: true, Text: "S-2026-000123", Format: "datamatrix"}, Verdict: classify.VerdictNILM,
		Flags: []string{"spot_nominal"}, TilesPlanned: 120, TilesCaptured: 120, TilesAnalysed: 120, Frames: 410,
		Spot:  scan.Spot{CenterX: 40000, CenterY: 15000, Diameter: 13000, Found: true, Probes: 9},
		Focus: scan.FocusStats{Points: 25, Ops: 26, Refocus: 1, Frames: 260, Terms: 6, FitRMS: 0.8, Map: []scan.FocusPoint{{X: 40000, Y: 15000, Z: 51.2}}},
		Result: classify.SlideResult{Verdict: classify.VerdictNILM, Counts: map[string]int{"NILM": 6100}, Cells: 6103,
			Top: []classify.Cell{c}, Reason: "no abnormal cells", ModelVersion: "m-1", Thresholds: classify.Thresholds{HighGrade: 0.5}},
		Timing:    scan.Timing{Machine: 95 * time.Second, TilePhase: 60 * time.Second, Wall: 3 * time.Second},
		StartedAt: start, FinishedAt: start.Add(95 * time.Second),
	}
}

// TestFromReportValidates: a mapped report validates against the schema
// (with every schema file registered under its $id) and keeps its facts.
func TestFromReportValidates(t *testing.T) {
	r := sampleReport()
	m := result.FromReport(r)
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	files, _ := filepath.Glob(filepath.Join(schemaDir, "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(doc.(map[string]any)["$id"].(string), doc); err != nil {
			t.Fatal(err)
		}
	}
	sch, err := c.Compile("https://schemas.papscan.example/result-body.json")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err := sch.Validate(v); err != nil {
		t.Fatalf("%s\n%v", body, err)
	}
	var back map[string]any
	_ = json.Unmarshal(body, &back)
	if back["schema_version"] != float64(result.Version) || back["verdict"] != "NILM" || back["slide_id"] != r.SlideID {
		t.Errorf("body %s", body)
	}
	if fm := m.Focus.Map; len(fm) != 1 || fm[0].ZUM != 51.2 || m.Timing.TilePhaseSeconds != 60 || m.Result.Top[0].Class != r.Result.Top[0].Class.String() {
		t.Errorf("mapped %+v", m)
	}
	// Extra fields are refused: the schema is closed.
	bad := strings.Replace(string(body), `"frames":410`, `"frames":410,"tiles":1`, 1)
	v, _ = jsonschema.UnmarshalJSON(strings.NewReader(bad))
	if err := sch.Validate(v); err == nil {
		t.Error("a body with an unknown field validated")
	}
}
