package rotator

import (
	"slices"
	"strings"
	"testing"
)

func TestPackedIDRoundTripsAndSortsLikeTheString(t *testing.T) {
	ids := []string{
		"1234abcd-12ab-34cd-56ef-1234567890ab", "0987dcba-09fe-87dc-65ba-ab0987654321",
		"ffffffff-ffff-4fff-8fff-ffffffffffff", "00000000-0000-4000-8000-000000000000",
		"mrk-1234abcd12ab34cd56ef1234567890ab", "mrk-00000000000000000000000000000000",
	}
	for _, id := range ids {
		p, ok := packID(id)
		if !ok || p.String() != id {
			t.Fatalf("packID(%q) = %v, %v; String %q", id, p, ok, p.String())
		}
	}
	packed := make([]packedID, len(ids))
	for i, id := range ids {
		packed[i], _ = packID(id)
	}
	slices.SortFunc(packed, comparePacked)
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	for i := range sorted {
		if packed[i].String() != sorted[i] {
			t.Fatalf("packed order %v, string order %v", packed, sorted)
		}
	}
	for _, bad := range []string{"", "alias/x", "1234ABCD-12AB-34CD-56EF-1234567890AB", "mrk-xyz", strings.Repeat("g", 36)} {
		if _, ok := packID(bad); ok {
			t.Errorf("packID(%q) accepted", bad)
		}
	}
	m := newIDMap()
	m.set(ids[0], "alias/a")
	m.set("odd-id", "alias/b")
	if v, _ := m.get(ids[0]); v != "alias/a" {
		t.Errorf("get packed = %q", v)
	}
	if v, _ := m.get("odd-id"); v != "alias/b" {
		t.Errorf("get other = %q", v)
	}
}
