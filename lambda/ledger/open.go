package ledger

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// An open rotation is one a run started whose new material no run has
// seen current yet: pk "open#<Region>#<account>", sk the key ARN. Sweeps
// read them all with one Query and check those keys' rotation status even
// when the key is not due, so a rotation that never completes (stuck) is
// flagged by the next sweep, not only by report runs.

// openPK is the open partition of a key ARN's Region and account.
func openPK(keyARN string) string {
	// arn:PARTITION:kms:REGION:ACCOUNT:key/ID
	p := strings.SplitN(keyARN, ":", 6)
	if len(p) < 6 {
		return "open#"
	}
	return "open#" + p[3] + "#" + p[4]
}

// open marks c's key as having a rotation whose completion is unseen.
func (l *Ledger) open(ctx context.Context, c Claim) error {
	item := key(openPK(c.KeyARN), c.KeyARN)
	item["runId"] = s(c.RunID)
	item["claimedAt"] = n(c.ClaimedAt.UnixMilli())
	item[settings.LedgerTTLAttribute] = n(c.ClaimedAt.Add(l.retention).Unix())
	_, err := l.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(l.table), Item: item})
	if err != nil {
		return l.fail("PutItem", err)
	}
	return nil
}

// Opened records that c's rotation started (KMS accepted the call, or it
// may have): until a run sees its material current (Close), sweeps check
// the key's status.
func (l *Ledger) Opened(ctx context.Context, c Claim) error { return l.open(ctx, c) }

// Close removes a key's open rotation once a run saw no rotation in
// progress.
func (l *Ledger) Close(ctx context.Context, keyARN string) error {
	_, err := l.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(l.table), Key: key(openPK(keyARN), keyARN)})
	if err != nil {
		return l.fail("DeleteItem", err)
	}
	return nil
}

// OpenRotations lists the keys of one Region and account with an open
// rotation (strongly consistent, every page).
func (l *Ledger) OpenRotations(ctx context.Context, region, account string) (map[string]bool, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		KeyConditionExpression:    aws.String("#pk = :p"),
		ExpressionAttributeNames:  map[string]string{"#pk": settings.LedgerPartitionKey, "#sk": settings.LedgerSortKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": s("open#" + region + "#" + account)},
		ProjectionExpression:      aws.String("#sk"),
		ConsistentRead:            aws.Bool(true),
	}
	out := map[string]bool{}
	for {
		page, err := l.api.Query(ctx, in)
		if err != nil {
			return nil, l.fail("Query", err)
		}
		for _, m := range page.Items {
			if v, ok := m[settings.LedgerSortKey].(*types.AttributeValueMemberS); ok {
				out[v.Value] = true
			}
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}
