package oracle

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// LedgerClaim is one claim record of the rotation ledger (docs/design.md
// "The rotation ledger"): pk "key#<key ARN>", sk "claim#<time>#<run ID>".
type LedgerClaim struct {
	// SK is the record's sort key, unique per key.
	SK      string
	KeyARN  string
	RunID   string
	Mode    string
	Outcome string
}

// claimOutcomes are the outcomes a claim can record.
var claimOutcomes = []string{"claimed", "rotated", "unconfirmed", "released"}

// Claims are the ledger's claim records.
type Claims []LedgerClaim

// ReadClaims reads every claim record of a ledger table, with a consistent
// Scan so the claims of a run that just ended are in.
func ReadClaims(ctx context.Context, db *dynamodb.Client, table string) (Claims, error) {
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{
		TableName:                 aws.String(table),
		FilterExpression:          aws.String("begins_with(#sk, :claim)"),
		ExpressionAttributeNames:  map[string]string{"#sk": "sk"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":claim": &types.AttributeValueMemberS{Value: "claim#"}},
		ConsistentRead:            aws.Bool(true),
	})
	var out Claims
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("oracle: scan the ledger %s: %w", table, err)
		}
		for _, item := range page.Items {
			str := func(name string) string {
				s, _ := item[name].(*types.AttributeValueMemberS)
				if s == nil {
					return ""
				}
				return s.Value
			}
			out = append(out, LedgerClaim{SK: strings.TrimPrefix(str("pk"), "key#") + " " + str("sk"),
				KeyARN: str("keyArn"), RunID: str("runId"), Mode: str("mode"), Outcome: str("outcome")})
		}
	}
	return out, nil
}

// Since returns the claims that earlier (an older read of the same table)
// does not hold: the claims made in between.
func (c Claims) Since(earlier Claims) Claims {
	old := map[string]bool{}
	for _, e := range earlier {
		old[e.SK] = true
	}
	var out Claims
	for _, x := range c {
		if !old[x.SK] {
			out = append(out, x)
		}
	}
	return out
}

// CheckClaims checks the claims made while the reports' runs ran (claims,
// from Since) against the reports and the emulator's snapshots before and
// after: every claim names a key, a run and a claim outcome; every entry a
// run reports rotated has that run's claim; and no key has more new
// on-demand rotations than new claims (every RotateKeyOnDemand follows a
// claim; docs/design.md "The rotation ledger"). Keys match by key ID: a
// multi-Region primary's claim covers its replicas' rotations. Rotations
// made outside the runs (a test's own) have no claim: leave such keys out
// of the snapshots or do not call this.
func CheckClaims(claims Claims, before, after Snapshot, reports ...*Report) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	byRun := map[string]bool{} // run ID + " " + key ARN
	perKeyID := map[string]int{}
	for _, c := range claims {
		if c.KeyARN == "" || c.RunID == "" || !slices.Contains(claimOutcomes, c.Outcome) {
			bad("ledger claim %s: keyArn %q, runId %q, outcome %q (want one of %v)", c.SK, c.KeyARN, c.RunID, c.Outcome, claimOutcomes)
		}
		byRun[c.RunID+" "+c.KeyARN] = true
		perKeyID[keyIDOf(c.KeyARN)]++
	}
	for _, r := range reports {
		if r.RepeatOf != "" {
			continue // its entries are the first run's, claimed before
		}
		for _, k := range r.Keys {
			if k.Outcome == Rotated && !byRun[r.RunID+" "+k.KeyARN] {
				bad("%s reported rotated by run %s, which has no claim on it in the ledger", k.KeyARN, r.RunID)
			}
		}
	}
	spent := map[string]int{}
	for _, arn := range slices.Sorted(maps.Keys(after)) {
		a := after[arn]
		spent[a.KeyID] = max(spent[a.KeyID], a.Started()-before[arn].Started())
	}
	for _, id := range slices.Sorted(maps.Keys(spent)) {
		if n := spent[id]; n > perKeyID[id] {
			bad("key %s: %d new on-demand rotation(s) in the emulator, %d new claim(s) in the ledger", id, n, perKeyID[id])
		}
	}
	return problems
}

// keyIDOf is the key ID at the end of a key ARN.
func keyIDOf(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }
