package ledger

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// States of a request record.
const (
	// InProgress: the request's first run is working on it.
	InProgress = "INPROGRESS"
	// Completed: the first run finished; the record holds its report.
	Completed = "COMPLETED"
)

// MaxReportBytes bounds the gzipped report a request record keeps: a
// DynamoDB item holds at most 400 KB
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html).
const MaxReportBytes = 350 << 10

// RequestRecord is an incident request's first run.
type RequestRecord struct {
	// Identity is the request's identity (its requestId, or a hash of
	// its normalized content).
	Identity string
	RunID    string
	Status   string
	// StartedAt is when the first run began; Until when it ends at the
	// latest (its Lambda deadline): past that, a record still in
	// progress belongs to a run that died, and a repeat may take over.
	StartedAt, Until time.Time
	// Report is the first run's report (JSON), once Completed; nil when it
	// did not fit the item.
	Report []byte
}

func requestPK(identity string) string { return "request#" + identity }

const requestSK = "request"

// Begin records that runID starts the request identity, unless a run of
// the same request started within window (and is completed, or still
// within its deadline). It returns nil, nil when this run is the first;
// the standing record and nil when it is a repeat; an *Error when the
// table could not be written.
func (l *Ledger) Begin(ctx context.Context, identity, runID string, now, until time.Time, window time.Duration) (*RequestRecord, error) {
	item := key(requestPK(identity), requestSK)
	item["runId"] = s(runID)
	item["status"] = s(InProgress)
	item["startedAt"] = n(now.UnixMilli())
	item["until"] = n(until.UnixMilli())
	item[settings.LedgerTTLAttribute] = n(now.Add(window).Unix())
	_, err := l.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.table),
		Item:      item,
		ConditionExpression: aws.String("attribute_not_exists(#pk) OR startedAt < :windowStart OR " +
			"(#s = :inProgress AND #u < :now)"),
		ExpressionAttributeNames: map[string]string{"#pk": settings.LedgerPartitionKey, "#s": "status", "#u": "until"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":windowStart": n(now.Add(-window).UnixMilli()), ":inProgress": s(InProgress), ":now": n(now.UnixMilli()),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		rec, gerr := l.Request(ctx, identity)
		if gerr != nil {
			return nil, gerr
		}
		if rec == nil {
			return nil, l.fail("PutItem", errors.New("the request record was refused but is not there"))
		}
		return rec, nil
	}
	if err != nil {
		return nil, l.fail("PutItem", err)
	}
	return nil, nil
}

// Complete stores the first run's report on its request record (gzipped;
// left out when even compressed it would not fit an item).
func (l *Ledger) Complete(ctx context.Context, identity, runID string, report []byte) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(report)
	_ = zw.Close()
	set := "SET #s = :completed"
	values := map[string]types.AttributeValue{":completed": s(Completed), ":run": s(runID)}
	if buf.Len() <= MaxReportBytes {
		set += ", report = :report"
		values[":report"] = &types.AttributeValueMemberB{Value: buf.Bytes()}
	}
	_, err := l.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       key(requestPK(identity), requestSK),
		UpdateExpression:          aws.String(set),
		ConditionExpression:       aws.String("runId = :run"),
		ExpressionAttributeNames:  map[string]string{"#s": "status"},
		ExpressionAttributeValues: values,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil // a later run took the request over
	}
	if err != nil {
		return l.fail("UpdateItem", err)
	}
	return nil
}

// Request reads the request record (strongly consistent); nil when none.
func (l *Ledger) Request(ctx context.Context, identity string) (*RequestRecord, error) {
	out, err := l.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.table), Key: key(requestPK(identity), requestSK), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, l.fail("GetItem", err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	m := out.Item
	num := func(name string) int64 {
		if v, ok := m[name].(*types.AttributeValueMemberN); ok {
			i, _ := strconv.ParseInt(v.Value, 10, 64)
			return i
		}
		return 0
	}
	rec := &RequestRecord{Identity: identity, StartedAt: time.UnixMilli(num("startedAt")).UTC(), Until: time.UnixMilli(num("until")).UTC()}
	if v, ok := m["runId"].(*types.AttributeValueMemberS); ok {
		rec.RunID = v.Value
	}
	if v, ok := m["status"].(*types.AttributeValueMemberS); ok {
		rec.Status = v.Value
	}
	if v, ok := m["report"].(*types.AttributeValueMemberB); ok {
		zr, err := gzip.NewReader(bytes.NewReader(v.Value))
		if err == nil {
			rec.Report, _ = io.ReadAll(zr)
		}
	}
	return rec, nil
}
