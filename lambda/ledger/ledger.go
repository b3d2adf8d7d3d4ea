// Package ledger is kms-rotator's rotation ledger: a DynamoDB table where
// the function writes a claim, with a conditional write, before every
// RotateKeyOnDemand, and records what the call did after it. KMS's
// RotateKeyOnDemand has no idempotency token and its reads are eventually
// consistent
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_RotateKeyOnDemand.html,
// https://docs.aws.amazon.com/kms/latest/developerguide/accessing-kms.html#programming-eventual-consistency),
// so a guard that only reads KMS can let a repeat, a retry or an overlapping
// run spend a second rotation of a key's lifetime budget. DynamoDB's
// conditional writes and strongly consistent reads make the claim the
// guard instead
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html).
//
// The table (docs/design.md "The rotation ledger") holds three kinds of item
// under the key schema of settings.LedgerPartitionKey / LedgerSortKey:
//   - a key's head, pk "key#<key ARN>", sk "head": the key's newest claim,
//     the one the conditional write is checked against;
//   - a claim record, pk "key#<key ARN>", sk "claim#<time>#<run ID>": every
//     claim ever made, kept for ROTATOR_LEDGER_RETENTION as evidence;
//   - a request record, pk "request#<identity>", sk "request": an incident
//     request's first run and, once it finished, its report;
//   - an open rotation, pk "open#<Region>#<account>", sk the key ARN: a
//     rotation whose new material no run has seen current yet (open.go).
package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// API is the part of *dynamodb.Client the ledger calls.
type API interface {
	GetItem(ctx context.Context, params *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, params *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, params *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, params *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	DeleteItem(ctx context.Context, params *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Outcomes of a claim.
const (
	// Claimed: written before the call; the call's answer is not recorded
	// yet (or the run ended before it could record it).
	Claimed = "claimed"
	// Rotated: KMS accepted the rotation (or a later run saw it in the
	// key's history).
	Rotated = "rotated"
	// Unconfirmed: the call failed ambiguously and KMS did not show the
	// rotation; the claim keeps blocking until it is settled.
	Unconfirmed = "unconfirmed"
	// Released: KMS refused the call with no effect, or a settling run
	// found no rotation; the claim blocks nothing.
	Released = "released"
)

// Claim is one claim on a key: who meant to rotate it, when and why, and
// what came of it.
type Claim struct {
	KeyARN string
	// ClaimedAt is when the claim was written (the function's clock).
	ClaimedAt time.Time
	// RunID, Mode and LambdaRequestID name the run that claimed.
	RunID, Mode, LambdaRequestID string
	// Request is the incident request's identity ("" for sweeps).
	Request string
	// Caller is who asked, where the function can know it: the account of
	// an EventBridge event, a state machine execution.
	Caller string
	// Reason and Force are the incident's.
	Reason string
	Force  bool
	// Outcome is Claimed, Rotated, Unconfirmed or Released.
	Outcome string
	// OnDemandBefore is the count of ON_DEMAND rotations the run saw right
	// before the call; MaterialBefore the key material current then.
	OnDemandBefore int
	MaterialBefore string
	// MaterialAfter is the material this rotation made current, once known;
	// CompletedAt when the run saw it current.
	MaterialAfter string
	CompletedAt   *time.Time
	// Detail says why a claim was released or left unconfirmed.
	Detail string
	// SettledBy names the run that settled an unconfirmed claim.
	SettledBy string
}

// recordSK is the sort key of the claim's record. Milliseconds, as
// claimedAt is stored: a claim read back names the same record.
func (c Claim) recordSK() string {
	return "claim#" + c.ClaimedAt.UTC().Format(millis) + "#" + c.RunID
}

// millis is RFC 3339 with exactly three fractional digits, so record sort
// keys sort by time as strings.
const millis = "2006-01-02T15:04:05.000Z07:00"

// Error is a ledger call that failed: the table was unreachable, throttled
// or denied. The engine fails closed on it: no RotateKeyOnDemand.
type Error struct {
	Table string
	Op    string
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("ledger table %s: %s: %v", e.Table, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Ledger reads and writes one table.
type Ledger struct {
	api   API
	table string
	// retention is how long claim records are kept (TTL).
	retention time.Duration
}

// New returns a ledger on table.
func New(api API, table string, retention time.Duration) *Ledger {
	return &Ledger{api: api, table: table, retention: retention}
}

// Table is the table's name.
func (l *Ledger) Table() string { return l.table }

func (l *Ledger) fail(op string, err error) error { return &Error{Table: l.table, Op: op, Err: err} }

func keyPK(arn string) string { return "key#" + arn }

const headSK = "head"

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{settings.LedgerPartitionKey: s(pk), settings.LedgerSortKey: s(sk)}
}

// item is the claim as a DynamoDB item under pk/sk.
func (l *Ledger) item(c Claim, sk string) map[string]types.AttributeValue {
	m := key(keyPK(c.KeyARN), sk)
	m["keyArn"] = s(c.KeyARN)
	m["claimedAt"] = n(c.ClaimedAt.UnixMilli())
	m["claimedAtText"] = s(c.ClaimedAt.UTC().Format(millis))
	m["runId"] = s(c.RunID)
	m["mode"] = s(c.Mode)
	// Always written, so the condition's comparison never meets a missing
	// attribute.
	m["request"] = s(orDash(c.Request))
	m["outcome"] = s(c.Outcome)
	m["force"] = &types.AttributeValueMemberBOOL{Value: c.Force}
	m["onDemandBefore"] = n(int64(c.OnDemandBefore))
	m["record"] = s(c.recordSK())
	for name, v := range map[string]string{"lambdaRequestId": c.LambdaRequestID, "caller": c.Caller, "reason": c.Reason,
		"materialBefore": c.MaterialBefore, "materialAfter": c.MaterialAfter, "detail": c.Detail, "settledBy": c.SettledBy} {
		if v != "" {
			m[name] = s(v)
		}
	}
	if c.CompletedAt != nil {
		m["completedAt"] = s(c.CompletedAt.UTC().Format(time.RFC3339Nano))
	}
	m[settings.LedgerTTLAttribute] = n(c.ClaimedAt.Add(l.retention).Unix())
	return m
}

func orDash(v string) string {
	if v == "" {
		return "-"
	}
	return v
}

// decode reads a claim item.
func decode(m map[string]types.AttributeValue) Claim {
	str := func(name string) string {
		if v, ok := m[name].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	num := func(name string) int64 {
		if v, ok := m[name].(*types.AttributeValueMemberN); ok {
			i, _ := strconv.ParseInt(v.Value, 10, 64)
			return i
		}
		return 0
	}
	c := Claim{
		KeyARN: str("keyArn"), ClaimedAt: time.UnixMilli(num("claimedAt")).UTC(), RunID: str("runId"), Mode: str("mode"),
		LambdaRequestID: str("lambdaRequestId"), Request: str("request"), Caller: str("caller"), Reason: str("reason"),
		Outcome: str("outcome"), OnDemandBefore: int(num("onDemandBefore")), MaterialBefore: str("materialBefore"),
		MaterialAfter: str("materialAfter"), Detail: str("detail"), SettledBy: str("settledBy"),
	}
	if c.Request == "-" {
		c.Request = ""
	}
	if v, ok := m["force"].(*types.AttributeValueMemberBOOL); ok {
		c.Force = v.Value
	}
	if t, err := time.Parse(time.RFC3339Nano, str("completedAt")); err == nil {
		c.CompletedAt = &t
	}
	return c
}

// Guard says which existing claim refuses a new one.
type Guard struct {
	// Since: a claim made at or after this time refuses (zero: none does,
	// as with force).
	Since time.Time
	// Request and RequestSince: a claim of the same request made at or
	// after RequestSince refuses even when older than Since, so a repeat
	// of a forced request never spends a second rotation.
	Request      string
	RequestSince time.Time
}

// Result is the answer to a claim.
type Result struct {
	// Held is the standing claim that refused this one (nil: written).
	Held *Claim
	// Replaced is the head this claim replaced, when it was written over
	// one (nil for a key's first claim).
	Replaced *Claim
}

// Claim writes c as the key's head if no claim that g refuses stands. The
// result's Held is nil when the claim was written, the standing head when
// it was refused; an *Error means the table could not be written (the
// caller must not rotate). A released head refuses nothing. The claim's
// record (the evidence) is written after the head; if that fails, the head
// is released again and the error returned.
func (l *Ledger) Claim(ctx context.Context, c Claim, g Guard) (Result, error) {
	c.Outcome = Claimed
	since := g.Since.UnixMilli()
	if g.Since.IsZero() {
		since = c.ClaimedAt.UnixMilli() + 1
	}
	reqSince := g.RequestSince.UnixMilli()
	if g.Request == "" {
		reqSince = since // sweeps have no request identity to repeat
	}
	out, err := l.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:    aws.String(l.table),
		Item:         l.item(c, headSK),
		ReturnValues: types.ReturnValueAllOld,
		ConditionExpression: aws.String("attribute_not_exists(#pk) OR #o = :released OR " +
			"(claimedAt < :since AND (#r <> :req OR claimedAt < :reqSince))"),
		ExpressionAttributeNames: map[string]string{"#pk": settings.LedgerPartitionKey, "#o": "outcome", "#r": "request"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":released": s(Released), ":since": n(since), ":req": s(orDash(g.Request)), ":reqSince": n(reqSince),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			if len(ccf.Item) > 0 {
				held := decode(ccf.Item)
				return Result{Held: &held}, nil
			}
			// Not every DynamoDB implementation returns the item: read it.
			held, herr := l.Head(ctx, c.KeyARN)
			if herr != nil {
				return Result{}, herr
			}
			if held == nil {
				return Result{}, l.fail("PutItem", errors.New("the claim was refused but the key has no head"))
			}
			return Result{Held: held}, nil
		}
		return Result{}, l.fail("PutItem", err)
	}
	var res Result
	if len(out.Attributes) > 0 {
		prev := decode(out.Attributes)
		res.Replaced = &prev
	}
	if _, err := l.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(l.table), Item: l.item(c, c.recordSK())}); err != nil {
		c.Outcome, c.Detail = Released, "the claim's record could not be written"
		_ = l.update(context.WithoutCancel(ctx), c, headSK, c.RunID)
		return Result{}, l.fail("PutItem", err)
	}
	return res, nil
}

// Record writes c's outcome (and what the call saw) on its record and, while
// it is still the key's head, on the head.
func (l *Ledger) Record(ctx context.Context, c Claim) error {
	if err := l.update(ctx, c, c.recordSK(), ""); err != nil {
		return err
	}
	return l.update(ctx, c, headSK, c.RunID)
}

// Settle records the outcome a later run found for an unconfirmed (or never
// recorded) claim: Rotated when the key's history shows the rotation,
// Released when it does not. Only the claim it read is changed; another
// run that settled or replaced it first wins.
func (l *Ledger) Settle(ctx context.Context, held Claim, outcome, by string) error {
	held.Outcome, held.SettledBy = outcome, by
	if err := l.update(ctx, held, held.recordSK(), ""); err != nil {
		return err
	}
	return l.update(ctx, held, headSK, held.RunID)
}

// update sets the outcome fields of the item at sk; with ifRun, only while
// the item is that run's claim made at the same time (a head may have
// moved on to a newer claim: that one is left alone).
func (l *Ledger) update(ctx context.Context, c Claim, sk, ifRun string) error {
	names := map[string]string{"#o": "outcome"}
	values := map[string]types.AttributeValue{":o": s(c.Outcome)}
	set := []string{"#o = :o"}
	for name, v := range map[string]string{"materialBefore": c.MaterialBefore, "materialAfter": c.MaterialAfter,
		"detail": c.Detail, "settledBy": c.SettledBy} {
		if v != "" {
			set = append(set, name+" = :"+name)
			values[":"+name] = s(v)
		}
	}
	if c.CompletedAt != nil {
		set = append(set, "completedAt = :completedAt")
		values[":completedAt"] = s(c.CompletedAt.UTC().Format(time.RFC3339Nano))
	}
	cond := "attribute_exists(#pk)"
	names["#pk"] = settings.LedgerPartitionKey
	if ifRun != "" {
		cond += " AND runId = :run AND claimedAt = :at"
		values[":run"], values[":at"] = s(ifRun), n(c.ClaimedAt.UnixMilli())
	}
	_, err := l.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       key(keyPK(c.KeyARN), sk),
		UpdateExpression:          aws.String("SET " + strings.Join(set, ", ")),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil // the head has a newer claim, or the record expired: nothing of ours to change
	}
	if err != nil {
		return l.fail("UpdateItem", err)
	}
	return nil
}

// Head returns the key's newest claim (strongly consistent), or nil when the
// key was never claimed.
func (l *Ledger) Head(ctx context.Context, keyARN string) (*Claim, error) {
	out, err := l.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.table), Key: key(keyPK(keyARN), headSK), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, l.fail("GetItem", err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	c := decode(out.Item)
	return &c, nil
}

// Claims lists a key's claim records, oldest first (at most limit; 0 = all).
func (l *Ledger) Claims(ctx context.Context, keyARN string, limit int) ([]Claim, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		KeyConditionExpression:    aws.String("#pk = :k AND begins_with(#sk, :c)"),
		ExpressionAttributeNames:  map[string]string{"#pk": settings.LedgerPartitionKey, "#sk": settings.LedgerSortKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": s(keyPK(keyARN)), ":c": s("claim#")},
		ConsistentRead:            aws.Bool(true),
	}
	var out []Claim
	for {
		page, err := l.api.Query(ctx, in)
		if err != nil {
			return nil, l.fail("Query", err)
		}
		for _, m := range page.Items {
			out = append(out, decode(m))
			if limit > 0 && len(out) == limit {
				return out, nil
			}
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}
