package request

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
)

// Identity is what makes two incident requests the same request: the
// caller's requestId when it gave one (SOAR tools), else a hash of the
// request's normalized content — mode, keys (as given, sorted) or tag,
// reason, force, dry run and target. A CLI re-send, a SOAR retry or a
// duplicate EventBridge delivery carries the same content, so it has the
// same identity; a responder who means another rotation sends a new reason
// or requestId. Other modes have no identity ("").
func (r Request) Identity() string {
	if !r.Mode.Rules().Identity {
		return ""
	}
	if r.RequestID != "" {
		return "id:" + r.RequestID
	}
	keys := make([]string, len(r.Keys))
	for i, k := range r.Keys {
		keys[i] = k.Raw
	}
	slices.Sort(keys)
	// encoding/json writes struct fields in order and escapes strings one
	// way, so equal content always hashes alike.
	b, _ := json.Marshal(struct {
		Mode   Mode     `json:"mode"`
		Keys   []string `json:"keys"`
		Tag    *Tag     `json:"tag"`
		Reason string   `json:"reason"`
		Force  bool     `json:"force"`
		DryRun bool     `json:"dryRun"`
		Target *Target  `json:"target"`
	}{r.Mode, keys, r.Tag, r.Reason, r.Force, r.DryRun, r.Target})
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:16])
}
