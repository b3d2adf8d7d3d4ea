package ledger

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// A sweep lease, pk "sweep#<Region>#<account>", sk "lease", is held by the
// one sweep of a target (account and Region) that runs now: EventBridge
// and Lambda deliver at least once, so one firing of the schedule may start
// two sweeps of the same target at once. The lease belongs to a chain (the
// first run of a chain of continuations), so the next link takes it over;
// it expires at the holder's deadline, so a run that died holds nothing.

func leasePK(region, account string) string { return "sweep#" + region + "#" + account }

const leaseSK = "lease"

// Holder is the run that holds a target's sweep lease.
type Holder struct {
	Chain, RunID string
	Until        time.Time
}

// Lease takes the target's sweep lease for chain until until, unless
// another chain holds it and its until has not passed. An invocation with
// the holder's Lambda request ID is Lambda retrying the holder after it
// failed (a crash, a timeout): it takes the lease over
// (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).
// It returns nil when taken, the holder when refused, or an *Error.
func (l *Ledger) Lease(ctx context.Context, region, account, chain, runID, lambdaRequestID string, now, until time.Time) (*Holder, error) {
	item := key(leasePK(region, account), leaseSK)
	item["chain"], item["runId"], item["until"] = s(chain), s(runID), n(until.UnixMilli())
	if lambdaRequestID == "" {
		lambdaRequestID = "none:" + runID // no request ID matches no other run's
	}
	item["lambdaRequestId"] = s(lambdaRequestID)
	item[settings.LedgerTTLAttribute] = n(until.Add(24 * time.Hour).Unix())
	_, err := l.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           aws.String(l.table),
		Item:                                item,
		ConditionExpression:                 aws.String("attribute_not_exists(#pk) OR #u < :now OR chain = :chain OR lambdaRequestId = :rid"),
		ExpressionAttributeNames:            map[string]string{"#pk": settings.LedgerPartitionKey, "#u": "until"},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":now": n(now.UnixMilli()), ":chain": s(chain), ":rid": s(lambdaRequestID)},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		m := ccf.Item
		if len(m) == 0 {
			out, gerr := l.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.table),
				Key: key(leasePK(region, account), leaseSK), ConsistentRead: aws.Bool(true)})
			if gerr != nil {
				return nil, l.fail("GetItem", gerr)
			}
			m = out.Item
		}
		h := &Holder{}
		if v, ok := m["chain"].(*types.AttributeValueMemberS); ok {
			h.Chain = v.Value
		}
		if v, ok := m["runId"].(*types.AttributeValueMemberS); ok {
			h.RunID = v.Value
		}
		if v, ok := m["until"].(*types.AttributeValueMemberN); ok {
			ms, _ := strconv.ParseInt(v.Value, 10, 64)
			h.Until = time.UnixMilli(ms).UTC()
		}
		return h, nil
	}
	if err != nil {
		return nil, l.fail("PutItem", err)
	}
	return nil, nil
}

// Release gives the target's sweep lease up, if chain still holds it.
func (l *Ledger) Release(ctx context.Context, region, account, chain string) error {
	_, err := l.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(l.table),
		Key:                       key(leasePK(region, account), leaseSK),
		ConditionExpression:       aws.String("chain = :chain"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":chain": s(chain)},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return l.fail("DeleteItem", err)
	}
	return nil
}
