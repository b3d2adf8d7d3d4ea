package ledger

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTargetsRecordKeepsTheLastResolution(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	if res, err := l.Targets(ctx); err != nil || res != nil {
		t.Fatalf("before any targets run: %+v, %v; want nothing", res, err)
	}
	at := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	first := Resolution{RunID: "run-1", At: at, Accounts: []string{"222222222222", "111111111111"}, Regions: []string{"eu-west-1", "us-east-1"}}
	if err := l.RecordTargets(ctx, first); err != nil {
		t.Fatal(err)
	}
	res, err := l.Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.RunID != "run-1" || !res.At.Equal(at) || !reflect.DeepEqual(res.Accounts, []string{"111111111111", "222222222222"}) {
		t.Fatalf("read back %+v", res)
	}
	for _, c := range []struct {
		account, region string
		want            bool
	}{{"111111111111", "", true}, {"222222222222", "us-east-1", true}, {"222222222222", "ap-south-1", false}, {"333333333333", "", false}} {
		if got := res.Covers(c.account, c.region); got != c.want {
			t.Errorf("Covers(%s, %q) = %v, want %v", c.account, c.region, got, c.want)
		}
	}
	// The next run replaces the record: an account it dropped is gone.
	if err := l.RecordTargets(ctx, Resolution{RunID: "run-2", At: at.Add(time.Hour), Accounts: []string{"222222222222"}, Regions: []string{"us-east-1"}}); err != nil {
		t.Fatal(err)
	}
	if res, err = l.Targets(ctx); err != nil || res.RunID != "run-2" || res.Covers("111111111111", "") {
		t.Fatalf("after the second run: %+v, %v", res, err)
	}
}

func TestTargetsRecordBounds(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	if err := l.RecordTargets(ctx, Resolution{RunID: "r", Regions: []string{"us-east-1"}}); err == nil {
		t.Fatal("a record without accounts was written")
	}
	many := make([]string, MaxRecordedAccounts+1)
	for i := range many {
		many[i] = fmt.Sprintf("%012d", i)
	}
	err := l.RecordTargets(ctx, Resolution{RunID: "r", Accounts: many, Regions: []string{"us-east-1"}})
	if err == nil || !strings.Contains(err.Error(), "stackName") {
		t.Fatalf("%d accounts: %v; want an error naming stackName", len(many), err)
	}
	// The largest record fits one DynamoDB item (400 KB).
	if err := l.RecordTargets(ctx, Resolution{RunID: "r", Accounts: many[:MaxRecordedAccounts], Regions: []string{"us-east-1"}}); err != nil {
		t.Fatalf("%d accounts: %v", MaxRecordedAccounts, err)
	}
	if res, err := l.Targets(ctx); err != nil || len(res.Accounts) != MaxRecordedAccounts {
		t.Fatalf("read back: %v accounts, %v", len(res.Accounts), err)
	}
}
