package config

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

//go:embed profiles/*.yaml
var profileFS embed.FS

// DefaultProfile is the name of the profile Default returns and Parse
// starts from.
const DefaultProfile = "sim"

// MaxConfigSize bounds the size of a configuration file.
const MaxConfigSize = 1 << 20

// Profiles returns the names of the shipped profiles, sorted.
func Profiles() []string {
	entries, err := profileFS.ReadDir("profiles")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Profile returns a fresh copy of the shipped profile name, e.g. "sim" or
// "papscan-r2".
func Profile(name string) (*Config, error) {
	if name == DefaultProfile {
		return Default(), nil
	}
	data, err := profileFS.ReadFile("profiles/" + path.Base(name) + ".yaml")
	if err != nil || path.Base(name) != name {
		return nil, fmt.Errorf("config: unknown profile %q; want one of %s",
			name, strings.Join(Profiles(), ", "))
	}
	return Parse(data, "profile "+name)
}

var simProfile = sync.OnceValues(func() (*Config, error) {
	data, err := profileFS.ReadFile("profiles/" + DefaultProfile + ".yaml")
	if err != nil {
		return nil, err
	}
	// The sim profile is the base of everything else, so it is decoded onto
	// the zero Config and must therefore spell out every key (tested).
	return parseOnto(&Config{}, data, "profile "+DefaultProfile)
})

// Default returns a fresh copy of the sim profile, the simulated robot. It
// is the base that Parse applies YAML on top of.
func Default() *Config {
	c, err := simProfile()
	if err != nil {
		// The embedded profile is tested to be valid; this cannot happen in
		// a released binary.
		panic("config: embedded sim profile is invalid: " + err.Error())
	}
	return c.Clone()
}

// Load reads and parses the configuration file at path (see Parse).
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: reading %s: %w", path, err)
	}
	return Parse(data, path)
}

// Parse decodes one YAML document on top of the defaults and validates the
// result.
//
// The defaults are the sim profile (Default): a key absent from data keeps
// its sim value, so a file for real hardware should spell out every machine
// key (start from a copy of a shipped profile, or use ParseOnto with that
// profile as base). Pins and objectives are the exception: when given, they
// replace the default as a whole.
//
// Decoding is strict: unknown keys, duplicate keys, values of the wrong type
// and quantities without a valid unit are errors. Problems are returned as a
// *ValidationError listing all of them with their key paths and lines;
// source (a file name, say) names the input in messages. All problems of
// the file come at once, ordered by line: when some keys do not decode, the
// range and cross-field checks of Validate still run on the rest of the
// file. An unknown key close to a known one gets a "did you mean".
func Parse(data []byte, source string) (*Config, error) {
	return ParseOnto(Default(), data, source)
}

// ParseOnto is Parse with another base than the sim profile, for example a
// site file on top of Profile("papscan-r2"). base is not modified; nil means Default().
func ParseOnto(base *Config, data []byte, source string) (*Config, error) {
	if base == nil {
		base = Default()
	}
	return parseOnto(base, data, source)
}

func parseOnto(base *Config, data []byte, source string) (*Config, error) {
	if source == "" {
		source = "config"
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%s: configuration larger than %d bytes", source, MaxConfigSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty configuration: want a YAML mapping with sections machine, agent, scan, classify, sim", source)
		}
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		return nil, fmt.Errorf("%s:%d: more than one YAML document; want exactly one", source, line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, fmt.Errorf("%s: empty configuration: want a YAML mapping with sections machine, agent, scan, classify, sim", source)
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: top level must be a mapping with sections machine, agent, scan, classify, sim; got %s",
			source, root.Line, describeNode(root))
	}

	chk := checker{lines: map[string]int{}, drop: map[*yaml.Node]bool{}}
	chk.node(root, reflect.TypeFor[Config](), "", 0)
	if len(chk.problems) > 0 {
		return nil, &ValidationError{Source: source, Problems: chk.allProblems(base, root)}
	}

	cfg := base.Clone()
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	cfg.normalize()
	if err := cfg.Validate(); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			ve.Source = source
			for i := range ve.Problems {
				ve.Problems[i].Line = chk.lineOf(ve.Problems[i].Path)
			}
		}
		return nil, err
	}
	return cfg, nil
}

// normalize maps equivalent spellings to one value so that configurations
// compare equal after a Marshal/Parse round trip.
func (c *Config) normalize() {
	if len(c.Agent.MQTT.Brokers) == 0 {
		c.Agent.MQTT.Brokers = nil
	}
	if len(c.Agent.Commands.FleetKeys) == 0 {
		c.Agent.Commands.FleetKeys = nil
	}
	if len(c.Agent.MQTT.AckKeys) == 0 {
		c.Agent.MQTT.AckKeys = nil
	}
}

// Marshal encodes c as YAML that Parse reads back to an equal Config.
// Quantities are written with units, I²C addresses in hex.
func (c *Config) Marshal() ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, err
	}
	// Write I²C addresses as 0x0E rather than 14.
	hex := func(a *yaml.Node) {
		if a != nil && a.Kind == yaml.ScalarNode {
			if v, err := strconv.ParseUint(a.Value, 10, 16); err == nil {
				a.Value = fmt.Sprintf("0x%02X", v)
				a.Style = 0
			}
		}
	}
	if m := mapGet(&n, "machine"); m != nil {
		if axes := mapGet(m, "axes"); axes != nil {
			for _, name := range []string{"x", "y", "z"} {
				hex(mapGet(mapGet(axes, name), "address"))
			}
		}
		hex(mapGet(mapGet(mapGet(m, "light"), "pca9685"), "address"))
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func mapGet(n *yaml.Node, key string) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// ---- strict pre-check of the YAML tree ----

// checker walks the YAML tree alongside the Config type before decoding. It
// reports unknown and duplicate keys, wrong node kinds and malformed
// quantities with their full key path and line, all at once, and records
// the line of every key for later validation messages.
type checker struct {
	problems []Problem
	lines    map[string]int
	// drop holds the key nodes of the pairs that have a problem of their
	// own (unknown, duplicate, undecodable value): allProblems removes
	// them to validate the rest of the file.
	drop map[*yaml.Node]bool
}

// allProblems returns the decoding problems and, so that one run of
// `config check` reports every problem of the file, the Validate problems
// of the rest of the file: the pairs with a decoding problem are removed
// from the tree (they keep base's values), the rest is decoded onto base
// and validated. Validate problems at or under a key with a decoding
// problem are left out (they would describe base's value, not the file's).
// Problems are ordered by line; those without a line come last.
func (c *checker) allProblems(base *Config, root *yaml.Node) []Problem {
	problems := slices.Clone(c.problems)
	pruneTree(root, c.drop, map[*yaml.Node]bool{})
	cfg := base.Clone()
	if err := root.Decode(cfg); err == nil {
		cfg.normalize()
		var ve *ValidationError
		if errors.As(cfg.Validate(), &ve) {
			for _, p := range ve.Problems {
				if slices.ContainsFunc(c.problems, func(d Problem) bool { return underPath(p.Path, d.Path) }) {
					continue
				}
				p.Line = c.lineOf(p.Path)
				problems = append(problems, p)
			}
		}
	}
	slices.SortStableFunc(problems, func(a, b Problem) int {
		switch {
		case a.Line == b.Line:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		}
		return a.Line - b.Line
	})
	return problems
}

// underPath reports whether key path p is q or lies under it.
func underPath(p, q string) bool {
	if q == "" || p == q {
		return true
	}
	return strings.HasPrefix(p, q) && (p[len(q)] == '.' || p[len(q)] == '[')
}

// pruneTree removes from every mapping reachable from n the pairs whose
// key is in drop. seen guards against alias cycles.
func pruneTree(n *yaml.Node, drop, seen map[*yaml.Node]bool) {
	if n == nil || seen[n] {
		return
	}
	seen[n] = true
	if n.Kind == yaml.AliasNode {
		pruneTree(n.Alias, drop, seen)
		return
	}
	if n.Kind == yaml.MappingNode {
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !drop[n.Content[i]] {
				kept = append(kept, n.Content[i], n.Content[i+1])
			}
		}
		n.Content = kept
	}
	for _, e := range n.Content {
		pruneTree(e, drop, seen)
	}
}

// maxAliasDepth bounds alias chains followed by the checker.
const maxAliasDepth = 16

var (
	leadingZeroRe = regexp.MustCompile(`^[-+]?0[0-9_]`)
	pinType       = reflect.TypeFor[Pin]()
	unmarshalType = reflect.TypeFor[yaml.Unmarshaler]()
)

func (c *checker) add(path string, line int, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// lineOf returns the line of path or of its nearest ancestor present in the
// YAML; 0 if none is.
func (c *checker) lineOf(p string) int {
	for p != "" {
		if l, ok := c.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// node checks n against t. It returns false when n itself cannot be
// decoded as t (the pair holding it must be dropped to decode the rest);
// problems further down that are dropped on their own do not count.
func (c *checker) node(n *yaml.Node, t reflect.Type, path string, depth int) bool {
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil || depth > maxAliasDepth {
			c.add(path, n.Line, "unresolvable or too deeply nested alias")
			return false
		}
		n, depth = n.Alias, depth+1
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return true // keeps the default
	}
	switch {
	case t == pinType && n.Kind == yaml.ScalarNode:
		if n.ShortTag() != "!!str" {
			c.add(path, n.Line, "want a pin name like \"GPIO17\" or a mapping with name or chip+line, got %s", describeNode(n))
			return false
		}
	case t.Kind() != reflect.Struct && reflect.PointerTo(t).Implements(unmarshalType):
		// A quantity: let its UnmarshalYAML judge.
		v := reflect.New(t)
		if err := n.Decode(v.Interface()); err != nil {
			c.add(path, n.Line, "%s", cleanYAMLError(err))
			return false
		}
	case t.Kind() == reflect.Struct:
		return c.mapping(n, t, path, depth)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.add(path, n.Line, "want a list of %s, got %s", describeType(t.Elem()), describeNode(n))
			return false
		}
		ok := true
		for i, e := range n.Content {
			ok = c.node(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), depth) && ok
		}
		return ok
	default:
		return c.scalar(n, t, path)
	}
	return true
}

func (c *checker) mapping(n *yaml.Node, t reflect.Type, path string, depth int) bool {
	if n.Kind != yaml.MappingNode {
		c.add(path, n.Line, "want a mapping with keys %s, got %s",
			strings.Join(sortedKeys(yamlKeysOfType(t)), ", "), describeNode(n))
		return false
	}
	fields := fieldsByKey(t)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			if !c.merge(v, t, path, depth) {
				c.drop[k] = true
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			c.add(path, k.Line, "keys must be plain strings, got %s", describeNode(k))
			c.drop[k] = true
			continue
		}
		p := join(path, k.Value)
		if prev, dup := seen[k.Value]; dup {
			c.add(p, k.Line, "duplicate key (first at line %d)", prev)
			c.drop[k] = true
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			known := sortedKeys(yamlKeysOfType(t))
			hint := ""
			if s := suggestKey(k.Value, known); s != "" {
				hint = fmt.Sprintf("did you mean %q? ", s)
			}
			c.add(p, k.Line, "unknown key; %sknown keys here: %s", hint, strings.Join(known, ", "))
			c.drop[k] = true
			continue
		}
		c.lines[p] = k.Line
		if !c.node(v, f.Type, p, depth) {
			c.drop[k] = true
		}
	}
	return true
}

// suggestKey returns the known key closest to key by edit distance when it
// is close enough to be a likely misspelling (at most a third of the
// longer of the two, and at least 1, and less than the shorter: "w" is not
// a misspelt "x"), or "" when none is. Ties go to the
// first in known.
func suggestKey(key string, known []string) string {
	best, bestD := "", -1
	for _, k := range known {
		d := editDistance(key, k)
		if bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	limit := max(len(key), len(best)) / 3
	if bestD < 0 || bestD > max(limit, 1) || bestD >= min(len(key), len(best)) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b in runes. Keys
// are short (MaxConfigSize bounds them), so the two-row table is cheap.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 256 || len(rb) > 256 {
		// Not a plausible key: no suggestion rather than a big table.
		return max(len(ra), len(rb))
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// merge checks the value of a merge key; false means it is not a mapping
// or list of mappings and the merge key must be dropped.
func (c *checker) merge(v *yaml.Node, t reflect.Type, path string, depth int) bool {
	for v.Kind == yaml.AliasNode && v.Alias != nil && depth <= maxAliasDepth {
		v, depth = v.Alias, depth+1
	}
	switch v.Kind {
	case yaml.MappingNode:
		return c.mapping(v, t, path, depth+1)
	case yaml.SequenceNode:
		ok := true
		for _, e := range v.Content {
			ok = c.merge(e, t, path, depth+1) && ok
		}
		return ok
	default:
		c.add(path, v.Line, "merge key << wants a mapping or a list of mappings, got %s", describeNode(v))
		return false
	}
}

func (c *checker) scalar(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind != yaml.ScalarNode {
		c.add(path, n.Line, "want %s, got %s", describeType(t), describeNode(n))
		return false
	}
	tag := n.ShortTag()
	ok := true
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		ok = tag == "!!int"
		if ok && leadingZeroRe.MatchString(n.Value) {
			// yaml v3 reads 016 as octal 14; nobody means that.
			c.add(path, n.Line, "ambiguous leading zero in %q; write decimal without it, or hex like 0x0E", n.Value)
			return false
		}
	case reflect.Float32, reflect.Float64:
		ok = tag == "!!int" || tag == "!!float"
	case reflect.Bool:
		ok = tag == "!!bool"
	case reflect.String:
		ok = tag != "!!binary"
	}
	if ok {
		ok = n.Decode(reflect.New(t).Interface()) == nil
	}
	if !ok {
		c.add(path, n.Line, "want %s, got %s", describeType(t), describeNode(n))
	}
	return ok
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Uint16:
		return "an integer in [0, 65535]"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Int16, reflect.Int8,
		reflect.Uint, reflect.Uint8, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return strconv.Quote(v)
	case yaml.DocumentNode:
		return "a document"
	}
	return "nothing"
}

// cleanYAMLError strips yaml's "yaml: unmarshal errors:" decoration.
func cleanYAMLError(err error) string {
	var ue *UnitError
	if errors.As(err, &ue) {
		return ue.Error()
	}
	s := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
	return strings.TrimSpace(strings.TrimPrefix(s, "yaml: "))
}

func deref(v any) reflect.Type {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// yamlKeys returns the YAML keys of struct type t.
func yamlKeys(t reflect.Type) map[string]bool { return yamlKeysOfType(t) }

func yamlKeysOfType(t reflect.Type) map[string]bool {
	m := map[string]bool{}
	for k := range fieldsByKey(t) {
		m[k] = true
	}
	return m
}

func fieldsByKey(t reflect.Type) map[string]reflect.StructField {
	m := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f
	}
	return m
}
