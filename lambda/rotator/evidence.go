package rotator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// EvidenceAPI is the part of the S3 client the engine writes evidence with.
type EvidenceAPI interface {
	PutObject(ctx context.Context, params *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// SetEvidence gives the engine the S3 client it writes each run's evidence
// record with (ROTATOR_EVIDENCE_BUCKET names the bucket; unset, none is
// written).
func (e *Engine) SetEvidence(api EvidenceAPI) { e.out.evidence = api }

// EvidenceSchemaVersion is the version of the evidence record's shape
// (docs/design.md "Evidence"): a change that removes or renames a field
// raises it.
const EvidenceSchemaVersion = 1

// Evidence is one run's record for auditors: what was collected, under
// which settings, what each key's state was and what the run did. Unlike
// the report it lists every candidate whatever their number.
type Evidence struct {
	SchemaVersion int    `json:"schemaVersion"`
	RunID         string `json:"runId"`
	Mode          string `json:"mode"`
	DryRun        bool   `json:"dryRun"`
	Account       string `json:"account"`
	Region        string `json:"region"`
	StartedAt     string `json:"startedAt"`
	FinishedAt    string `json:"finishedAt"`
	// Initiator is who asked: an incident's reason, its request identity
	// and the caller where the function can know it.
	Initiator EvidenceInitiator `json:"initiator"`
	// Settings are the rules in force.
	Settings EvidenceSettings `json:"settings"`
	// Collection says what was read: every candidate, and those whose
	// state could not be read, each with its reason.
	Collection EvidenceCollection `json:"collection"`
	Summary    Summary            `json:"summary"`
	// Keys is every candidate's entry, as the report's.
	Keys json.RawMessage `json:"keys"`
	// CollectionSucceeded is true only when the candidates were listed to
	// the end and every one of them was read: the "collection completed"
	// marker an assessor checks first.
	CollectionSucceeded bool `json:"collectionSucceeded"`
}

// EvidenceInitiator is who started a run.
type EvidenceInitiator struct {
	Caller          string `json:"caller"`
	LambdaRequestID string `json:"lambdaRequestId"`
	Reason          string `json:"reason,omitempty"`
	Request         string `json:"request,omitempty"`
	Force           bool   `json:"force,omitempty"`
}

// EvidenceSettings are the settings a run decided by.
type EvidenceSettings struct {
	IntervalDays          int    `json:"intervalDays"`
	MinIntervalDays       int    `json:"minIntervalDays"`
	OnDemandLimit         int    `json:"onDemandLimit"`
	Reserve               int    `json:"reserve"`
	AutoRotationGraceDays int    `json:"autoRotationGraceDays"`
	IncidentCooldown      string `json:"incidentCooldown"`
	NoticeDays            int    `json:"noticeDays"`
	SkipIdle              bool   `json:"skipIdle"`
	TagKey                string `json:"tagKey"`
	TagValue              string `json:"tagValue"`
}

// EvidenceCollection counts what a run read.
type EvidenceCollection struct {
	Candidates int `json:"candidates"`
	// Read counts the candidates whose state was read (everything the
	// decision needed).
	Read       int                  `json:"read"`
	Unreadable []EvidenceUnreadable `json:"unreadable"`
	// ListingError is why the listing of the candidates stopped early.
	ListingError string `json:"listingError,omitempty"`
}

// EvidenceUnreadable is a candidate whose state was not read, and why.
type EvidenceUnreadable struct {
	KeyARN  string  `json:"keyArn"`
	Outcome Outcome `json:"outcome"`
	Reason  Reason  `json:"reason"`
	Error   string  `json:"error,omitempty"`
}

// EvidenceReport is where the run's evidence went, in its report.
type EvidenceReport struct {
	Bucket string `json:"bucket,omitempty"`
	Key    string `json:"key,omitempty"`
	// Error says why the evidence could not be written (metric
	// EvidenceFailed).
	Error string `json:"error,omitempty"`
}

// evidenceBook gathers every candidate's entry as the keys finish, encoded
// (a few hundred bytes a key: 100,000 keys take about 30 MB).
type evidenceBook struct {
	mu         sync.Mutex
	keys       bytes.Buffer
	read       int
	unreadable []EvidenceUnreadable
}

// add records one entry; unread: the key's state was not read (a read
// call failed, or the key was deferred before its turn).
func (b *evidenceBook) add(k KeyReport, unread bool) {
	enc, err := json.Marshal(k)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keys.Len() > 0 {
		b.keys.WriteByte(',')
	}
	b.keys.Write(enc)
	if unread {
		b.unreadable = append(b.unreadable, EvidenceUnreadable{KeyARN: k.KeyARN, Outcome: k.Outcome, Reason: k.Reason, Error: k.Error})
		return
	}
	b.read++
}

// evidenceOn says whether the run writes evidence: a bucket is set and
// the run is no repeat (its first run wrote it).
func (o *outputs) evidenceOn() bool {
	r := o.r
	return r.e.out.evidence != nil && r.e.cfg.EvidenceBucket != "" && r.guard.repeatOf == ""
}

// writeEvidence writes the run's evidence record to the evidence bucket,
// under evidence/<account>/<Region>/<yyyy>/<mm>/<dd>/<run ID>.json (the
// run's start, UTC): one object per run, per target in organization mode,
// so an assessor lists a period of one account and Region by prefix. A
// failure is logged and said in the report, never fails the run.
func (o *outputs) writeEvidence(ctx context.Context, rep *Report, listErr error) *EvidenceReport {
	r := o.r
	if !o.evidenceOn() {
		return nil
	}
	cfg := r.e.cfg
	b := o.book
	b.mu.Lock()
	ev := Evidence{
		SchemaVersion: EvidenceSchemaVersion, RunID: rep.RunID, Mode: string(rep.Mode), DryRun: rep.DryRun,
		Account: r.scope.Account, Region: r.scope.Region, StartedAt: rep.StartedAt, FinishedAt: rep.FinishedAt,
		Initiator: EvidenceInitiator{Caller: r.caller(), LambdaRequestID: r.inv.RequestID, Reason: r.req.Reason,
			Request: r.guard.identity, Force: r.req.Force},
		Settings: EvidenceSettings{IntervalDays: cfg.IntervalDays, MinIntervalDays: cfg.MinIntervalDays,
			OnDemandLimit: cfg.OnDemandLimit, Reserve: cfg.Reserve, AutoRotationGraceDays: cfg.AutoRotationGraceDays,
			IncidentCooldown: cfg.IncidentCooldown.String(), NoticeDays: cfg.NoticeDays, SkipIdle: cfg.SkipIdle,
			TagKey: cfg.TagKey, TagValue: cfg.TagValue},
		Collection: EvidenceCollection{Candidates: rep.Summary.Candidates, Read: b.read,
			Unreadable: append([]EvidenceUnreadable{}, b.unreadable...)},
		Summary: rep.Summary,
		Keys:    json.RawMessage("[" + b.keys.String() + "]"),
	}
	b.mu.Unlock()
	if listErr != nil {
		ev.Collection.ListingError = listErr.Error()
	}
	ev.CollectionSucceeded = listErr == nil && len(ev.Collection.Unreadable) == 0 && ev.Collection.Read == ev.Collection.Candidates
	body, err := json.Marshal(ev)
	out := &EvidenceReport{Bucket: cfg.EvidenceBucket, Key: evidenceKey(r.scope.Account, r.scope.Region, o.start, rep.RunID)}
	if err == nil {
		pctx, cancel := r.afterKeys(ctx, cfg.CallTimeout)
		defer cancel()
		_, err = r.e.out.evidence.PutObject(pctx, &s3.PutObjectInput{
			Bucket: aws.String(out.Bucket), Key: aws.String(out.Key), Body: bytes.NewReader(body),
			ContentType:          aws.String("application/json"),
			ServerSideEncryption: s3types.ServerSideEncryptionAes256,
			Metadata:             map[string]string{"schema-version": strconv.Itoa(EvidenceSchemaVersion), "collection-succeeded": strconv.FormatBool(ev.CollectionSucceeded)},
		})
	}
	if err != nil {
		r.log.Error("evidence not written", "bucket", out.Bucket, "key", out.Key, "error", err.Error())
		return &EvidenceReport{Error: fmt.Sprintf("s3://%s/%s: %v", out.Bucket, out.Key, err)}
	}
	r.log.Info("evidence written", "bucket", out.Bucket, "key", out.Key, "bytes", len(body), "collectionSucceeded", ev.CollectionSucceeded)
	return out
}

// evidenceKey is the object key of a run's evidence.
func evidenceKey(account, region string, start time.Time, runID string) string {
	return fmt.Sprintf("evidence/%s/%s/%s/%s.json", account, region, start.UTC().Format("2006/01/02"), runID)
}
