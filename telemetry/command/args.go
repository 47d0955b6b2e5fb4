package command

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Command types.
const (
	TypeStartMagazine = "start_magazine" // args StartMagazineArgs
	TypePause         = "pause"          // no args
	TypeResume        = "resume"         // no args
	TypeAbort         = "abort"          // args AbortArgs (optional)
	TypeStatus        = "status"         // no args; result Status
	TypeSelfTest      = "self_test"      // args SelfTestArgs (optional); result SelfTestResult
	TypeSetLogLevel   = "set_log_level"  // args SetLogLevelArgs
	TypeReloadConfig  = "reload_config"  // no args
	TypeFetch         = "fetch"          // args FetchArgs; result FetchResult
)

// Types lists every command type, in documentation order.
var Types = []string{TypeStartMagazine, TypePause, TypeResume, TypeAbort, TypeStatus,
	TypeSelfTest, TypeSetLogLevel, TypeReloadConfig, TypeFetch}

// NoArgs is the argument of commands without arguments: args absent, null
// or {}.
type NoArgs struct{}

// StartMagazineArgs: start scanning the loaded magazine.
type StartMagazineArgs struct {
	// Magazine names the magazine (slide IDs are derived from it):
	// 1..64 of [A-Za-z0-9_-].
	Magazine string `json:"magazine"`
}

// AbortArgs: stop the running magazine (after the current motion stops
// safely). Reason is logged and audited (optional, at most 256 characters
// of printable UTF-8).
type AbortArgs struct {
	Reason string `json:"reason,omitempty"`
}

// SelfTestArgs: run the self-test. Level is "quick" (default) or "full".
type SelfTestArgs struct {
	Level string `json:"level,omitempty"`
}

// SetLogLevelArgs: change the agent's log level until the next restart or
// config reload. Level is debug, info, warn or error.
type SetLogLevelArgs struct {
	Level string `json:"level"`
}

// Fetch items.
const (
	ItemGallery  = "gallery"  // slides/<slide>/<result>/gallery.png
	ItemOverview = "overview" // slides/<slide>/<result>/overview.png
	ItemResult   = "result"   // slides/<slide>/<result>/result.json
	ItemTile     = "tile"     // slides/<slide>/<result>/tiles/<tile>
)

// FetchArgs: send back one stored file of a slide result. The file is
// addressed by validated names only, never by a path: RelPath builds the
// path under the state directory, and ReadStored opens it through os.Root.
type FetchArgs struct {
	SlideID  string `json:"slide_id"`
	ResultID string `json:"result_id"`
	// Item is gallery, overview, result or tile.
	Item string `json:"item"`
	// Tile is the tile file name (item "tile" only): 1..128 of
	// [A-Za-z0-9._-], starting with a letter or digit, no "..".
	Tile string `json:"tile,omitempty"`
}

var (
	magazineRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	tileRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// argsError is a bad_request refusal naming the argument.
func argsError(field, format string, a ...any) error {
	return fmt.Errorf("args.%s: %s", field, fmt.Sprintf(format, a...))
}

// Validate checks the arguments.
func (a StartMagazineArgs) Validate() error {
	if !magazineRe.MatchString(a.Magazine) {
		return argsError("magazine", "required, 1..64 of [A-Za-z0-9_-], got %q", a.Magazine)
	}
	return nil
}

// Validate checks the arguments.
func (a AbortArgs) Validate() error {
	if utf8.RuneCountInString(a.Reason) > 256 {
		return argsError("reason", "longer than 256 characters")
	}
	if !printable(a.Reason) {
		return argsError("reason", "must be printable UTF-8 without control characters")
	}
	return nil
}

// Validate checks the arguments.
func (a SelfTestArgs) Validate() error {
	if a.Level != "" && a.Level != "quick" && a.Level != "full" {
		return argsError("level", "must be quick or full, got %q", a.Level)
	}
	return nil
}

// Validate checks the arguments.
func (a SetLogLevelArgs) Validate() error {
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, a.Level) {
		return argsError("level", "must be debug, info, warn or error, got %q", a.Level)
	}
	return nil
}

// Validate checks the arguments; names that could leave their directory
// ("..", "/", "\", a leading '.', NUL, ...) are refused.
func (a FetchArgs) Validate() error {
	if err := safeName("slide_id", a.SlideID); err != nil {
		return err
	}
	if err := safeName("result_id", a.ResultID); err != nil {
		return err
	}
	switch a.Item {
	case ItemGallery, ItemOverview, ItemResult:
		if a.Tile != "" {
			return argsError("tile", "only allowed with item \"tile\"")
		}
	case ItemTile:
		if !tileRe.MatchString(a.Tile) || strings.Contains(a.Tile, "..") {
			return argsError("tile", "required with item \"tile\": 1..128 of [A-Za-z0-9._-] starting with a letter or digit, no \"..\", got %q", a.Tile)
		}
	default:
		return argsError("item", "must be gallery, overview, result or tile, got %q", a.Item)
	}
	return nil
}

// RelPath is the slash-separated path of the file relative to the state
// directory. Validate must have passed; the result is always local
// (filepath.IsLocal) and stays under "slides/".
func (a FetchArgs) RelPath() string {
	dir := path.Join("slides", a.SlideID, a.ResultID)
	switch a.Item {
	case ItemGallery:
		return dir + "/gallery.png"
	case ItemOverview:
		return dir + "/overview.png"
	case ItemResult:
		return dir + "/result.json"
	default:
		return dir + "/tiles/" + a.Tile
	}
}

// ContentType is the media type of the item.
func (a FetchArgs) ContentType() string {
	if a.Item == ItemResult {
		return "application/json"
	}
	return "image/png"
}

// safeName accepts a slide or result ID usable as one directory name and
// one MQTT topic level: 1..128 bytes of printable UTF-8 without '/', '\\',
// '+', '#', spaces, a leading '.' or '$', and not "." or "..".
func safeName(field, v string) error {
	bad := func(why string) error { return argsError(field, "%s, got %q", why, v) }
	switch {
	case v == "":
		return bad("required")
	case len(v) > 128:
		return bad("longer than 128 bytes")
	case !printable(v):
		return bad("must be printable UTF-8")
	case v[0] == '.' || v[0] == '$':
		return bad("must not start with '.' or '$'")
	case strings.ContainsAny(v, `/\+#`):
		return bad(`must not contain '/', '\', '+' or '#'`)
	}
	for _, r := range v {
		if unicode.IsSpace(r) {
			return bad("must not contain spaces")
		}
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// validator is implemented by every args type.
type validator interface{ Validate() error }

// decodeArgs strictly decodes raw into a new T and validates it.
// Absent or null args decode as the zero T (then validated).
func decodeArgs[T any](raw json.RawMessage) (T, error) {
	var a T
	raw = bytes.TrimSpace(raw)
	if len(raw) != 0 && !bytes.Equal(raw, []byte("null")) {
		if raw[0] != '{' {
			return a, fmt.Errorf("args: want a JSON object")
		}
		if err := strictUnmarshal(raw, &a); err != nil {
			return a, fmt.Errorf("args: %w", err)
		}
	}
	if v, ok := any(a).(validator); ok {
		if err := v.Validate(); err != nil {
			return a, err
		}
	}
	return a, nil
}

// parseArgs decodes and validates the args of a known command type. It
// returns the typed args value (NoArgs, StartMagazineArgs, ...), and
// known=false for an unknown type.
func parseArgs(typ string, raw json.RawMessage) (args any, known bool, err error) {
	switch typ {
	case TypeStartMagazine:
		args, err = decodeArgs[StartMagazineArgs](raw)
	case TypeAbort:
		args, err = decodeArgs[AbortArgs](raw)
	case TypeSelfTest:
		args, err = decodeArgs[SelfTestArgs](raw)
	case TypeSetLogLevel:
		args, err = decodeArgs[SetLogLevelArgs](raw)
	case TypeFetch:
		args, err = decodeArgs[FetchArgs](raw)
	case TypePause, TypeResume, TypeStatus, TypeReloadConfig:
		args, err = decodeArgs[NoArgs](raw)
	default:
		return nil, false, nil
	}
	return args, true, err
}
