package request

import (
	"testing"
)

func TestIdentitySameForRepeatsDifferentForNewRequests(t *testing.T) {
	dec := func(p string) Request {
		t.Helper()
		r, err := Decode([]byte(p), testScope)
		if err != nil {
			t.Fatalf("Decode(%s): %v", p, err)
		}
		return r
	}
	base := `{"mode":"incident","keys":["alias/a","alias/b"],"reason":"INC-1","force":true}`
	id := dec(base).Identity()
	if id == "" {
		t.Fatal("an incident has an identity")
	}
	// The same request, spelled differently or re-sent inside an event.
	for _, p := range []string{
		`{"mode":"incident","keys":["alias/b","alias/a"],"reason":"INC-1","force":true}`,
		`{"force":true,"reason":"INC-1","keys":["alias/a","alias/b","alias/a"],"mode":"incident"}`,
		`{"mode":"incident","keys":["alias/a","alias/b"],"reason":"INC-1","force":true,"wait":false}`,
		`{"source":"kms-rotator","detail-type":"Rotate KMS Keys","time":"2026-12-01T00:00:00Z","detail":` + base + `}`,
	} {
		if got := dec(p).Identity(); got != id {
			t.Errorf("Identity(%s) = %s, want the repeat's %s", p, got, id)
		}
	}
	// New requests.
	for _, p := range []string{
		`{"mode":"incident","keys":["alias/a","alias/b"],"reason":"INC-2","force":true}`,
		`{"mode":"incident","keys":["alias/a"],"reason":"INC-1","force":true}`,
		`{"mode":"incident","keys":["alias/a","alias/b"],"reason":"INC-1"}`,
		`{"mode":"incident","keys":["alias/a","alias/b"],"reason":"INC-1","force":true,"dryRun":true}`,
		`{"mode":"incident","keys":["alias/a","alias/b"],"reason":"INC-1","force":true,"requestId":"soar-7"}`,
	} {
		if got := dec(p).Identity(); got == id {
			t.Errorf("Identity(%s) = the first request's %s, want a new identity", p, got)
		}
	}
	// A requestId is the identity, whatever the content.
	a := dec(`{"mode":"incident","keys":["alias/a"],"reason":"INC-1","requestId":"soar-7"}`).Identity()
	b := dec(`{"mode":"incident","keys":["alias/b"],"reason":"INC-9","requestId":"soar-7"}`).Identity()
	if a != "id:soar-7" || b != a {
		t.Errorf("requestId identities = %q, %q, want both id:soar-7", a, b)
	}
	if got := dec(`{"mode":"scheduled"}`).Identity(); got != "" {
		t.Errorf("a sweep's identity = %q, want none", got)
	}
}
