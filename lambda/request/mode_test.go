package request

import (
	"reflect"
	"strings"
	"testing"
)

func TestModeValid(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		want bool
	}{
		{ModeScheduled, true}, {ModePlan, true}, {ModeIncident, true}, {ModeReport, true}, {ModeTargets, true},
		{"Scheduled", false}, {"", false}, {"sweep", false},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			if got := tc.mode.Valid(); got != tc.want {
				t.Fatalf("Mode(%q).Valid() = %v, want %v", tc.mode, got, tc.want)
			}
		})
	}
}

// The mode rules table covers every mode and every request field, and
// the rules hold what docs/design.md says of each mode.
func TestModeRulesTable(t *testing.T) {
	taken := map[string]bool{}
	for _, m := range modes {
		r := Mode(m).Rules()
		if r.Fields == nil {
			t.Errorf("mode %s has no rules", m)
		}
		for _, f := range r.Fields {
			if !contains(requestFields, f) {
				t.Errorf("mode %s takes %q, which is not a request field", m, f)
			}
			taken[f] = true
		}
	}
	for _, f := range requestFields {
		if f != "mode" && !taken[f] {
			t.Errorf("no mode takes the request field %q", f)
		}
	}
	for key := range fieldRefusals {
		m, f, _ := strings.Cut(key, "/")
		if !Mode(m).Valid() || !contains(requestFields, f) || contains(Mode(m).Rules().Fields, f) {
			t.Errorf("fieldRefusals[%q] names a mode and field that do not refuse each other", key)
		}
	}
	for m, want := range map[Mode]Rules{
		ModeScheduled: {Sweep: true, Continues: true, Jitter: true, Lease: true},
		ModePlan:      {Sweep: true, Dry: true, Continues: true},
		ModeReport:    {Sweep: true, Dry: true, Inventory: true, Continues: true},
		ModeIncident:  {Identity: true, Waits: true, Publishes: true},
	} {
		got := m.Rules()
		got.Fields = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s rules = %+v, want %+v", m, got, want)
		}
	}
}
