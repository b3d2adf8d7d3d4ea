package request

import "testing"

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
