// Package result is the wire format of a slide's result: the body of the
// MQTT result message (docs/schemas/result-body.json, docs/asyncapi.yaml)
// that the fleet receives. It is a versioned type of its own, mapped from
// scan.Report in one place (FromReport), so that renaming a field of the
// scanner or the classifier does not change the fleet's contract; a test
// fails when this type and its JSON Schema drift apart.
//
//	body, err := json.Marshal(result.FromReport(report))
//
// Version is the schema version every message carries; a change that
// removes or renames a field, or changes its meaning, raises it.
package result
