package ledger

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The targets record, pk "targets", sk "resolved", holds the accounts and
// Regions the last targets run resolved: the member role exists only where
// the organization sweep targets, and a request naming any other account
// is refused before the function assumes a role there. One item, rewritten
// by each targets run, so "the last run" is exactly what it holds.
const (
	targetsPK = "targets"
	targetsSK = "resolved"
)

// MaxRecordedAccounts bounds the accounts one targets record holds: a
// DynamoDB item holds at most 400 KB
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html),
// and an account ID in a string set takes about 15 bytes.
const MaxRecordedAccounts = 20000

// Resolution is what the last targets run resolved.
type Resolution struct {
	RunID    string
	At       time.Time
	Accounts []string
	Regions  []string
}

// Covers reports whether the resolution holds the account and, when region
// is not empty, the Region.
func (r *Resolution) Covers(account, region string) bool {
	_, found := slices.BinarySearch(r.Accounts, account) // Targets sorts them
	return found && (region == "" || slices.Contains(r.Regions, region))
}

// RecordTargets replaces the targets record with this run's resolution.
func (l *Ledger) RecordTargets(ctx context.Context, res Resolution) error {
	if len(res.Accounts) == 0 || len(res.Regions) == 0 {
		return fmt.Errorf("targets record: no account or no Region to record")
	}
	if len(res.Accounts) > MaxRecordedAccounts {
		return fmt.Errorf("targets record: %d accounts, more than one ledger item holds (%d): shard the organization across deployments (context stackName)",
			len(res.Accounts), MaxRecordedAccounts)
	}
	item := key(targetsPK, targetsSK)
	item["runId"] = s(res.RunID)
	item["at"] = n(res.At.UnixMilli())
	item["accounts"] = &types.AttributeValueMemberSS{Value: res.Accounts}
	item["regions"] = &types.AttributeValueMemberSS{Value: res.Regions}
	if _, err := l.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(l.table), Item: item}); err != nil {
		return l.fail("PutItem", err)
	}
	return nil
}

// Targets returns the last targets run's resolution, nil when none was
// recorded, or an *Error. The read is strongly consistent: a sweep started
// right after a targets run must see it.
func (l *Ledger) Targets(ctx context.Context) (*Resolution, error) {
	out, err := l.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.table),
		Key: key(targetsPK, targetsSK), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, l.fail("GetItem", err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	res := &Resolution{}
	if v, ok := out.Item["runId"].(*types.AttributeValueMemberS); ok {
		res.RunID = v.Value
	}
	if v, ok := out.Item["at"].(*types.AttributeValueMemberN); ok {
		ms, _ := strconv.ParseInt(v.Value, 10, 64)
		res.At = time.UnixMilli(ms).UTC()
	}
	if v, ok := out.Item["accounts"].(*types.AttributeValueMemberSS); ok {
		res.Accounts = slices.Sorted(slices.Values(v.Value))
	}
	if v, ok := out.Item["regions"].(*types.AttributeValueMemberSS); ok {
		res.Regions = v.Value
	}
	return res, nil
}
