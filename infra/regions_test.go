package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPartitionRegionsAreTheSDKs compares partitionRegions with the
// partitions the AWS SDK for Go v2 of go.mod ships (its endpoint rules'
// partitions.json), so that an SDK upgrade that knows a new Region or
// partition fails here until regions.go lists it.
func TestPartitionRegionsAreTheSDKs(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-sdk-go-v2").Output()
	if err != nil {
		t.Fatalf("go list the SDK's module: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "internal", "endpoints", "awsrulesfn", "partitions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Partitions []struct {
			ID      string                     `json:"id"`
			Regions map[string]json.RawMessage `json:"regions"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	sdk := map[string][]string{}
	for _, p := range doc.Partitions {
		for r := range p.Regions {
			if !strings.HasSuffix(r, "-global") { // aws-global and the like: endpoints, not Regions
				sdk[p.ID] = append(sdk[p.ID], r)
			}
		}
		slices.Sort(sdk[p.ID])
	}
	if len(sdk) < 3 {
		t.Fatalf("the SDK lists %d partitions", len(sdk))
	}
	for p, regions := range sdk {
		if got := partitionRegions[p]; !slices.Equal(got, regions) {
			t.Errorf("partition %s: regions.go %v, the SDK %v", p, got, regions)
		}
	}
	for p := range partitionRegions {
		if _, ok := sdk[p]; !ok {
			t.Errorf("partition %s is not the SDK's", p)
		}
	}
}
