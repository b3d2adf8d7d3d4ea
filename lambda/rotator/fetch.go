package rotator

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// fetcher reads a run's facts from KMS, cheapest first as Decide asks for
// them: it holds the clients of every account the run works in, waits for
// each call's pace and counts the calls by operation (the summary line's
// "calls").
type fetcher struct {
	r *run
	// accounts holds the member accounts' clients (members.go); the
	// function's own account uses the engine's.
	accounts map[string]accountClients
	calls    callCounts
}

func (f *fetcher) describe(ctx context.Context, it *item) error {
	if err := f.call(ctx, opDescribeKey); err != nil {
		return err
	}
	out, err := f.kmsOf(it).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(it.arn)}, inRegion(it.region))
	if err != nil {
		return err
	}
	km := out.KeyMetadata
	if km == nil {
		return errors.New("DescribeKey returned no KeyMetadata")
	}
	m := &Metadata{
		KeyManager: string(km.KeyManager),
		KeySpec:    string(km.KeySpec),
		KeyUsage:   string(km.KeyUsage),
		Origin:     string(km.Origin),
		KeyState:   string(km.KeyState),
		CreatedAt:  aws.ToTime(km.CreationDate),
		MaterialID: aws.ToString(km.CurrentKeyMaterialId),
	}
	if mr := km.MultiRegionConfiguration; mr != nil && mr.MultiRegionKeyType == kmstypes.MultiRegionKeyTypeReplica {
		m.Replica = true
		if mr.PrimaryKey != nil {
			m.PrimaryARN = aws.ToString(mr.PrimaryKey.Arn)
		}
	} else if mr != nil {
		for _, rk := range mr.ReplicaKeys {
			m.Replicas = append(m.Replicas, RegionalKey{ARN: strings.Clone(aws.ToString(rk.Arn)), Region: strings.Clone(aws.ToString(rk.Region))})
		}
	}
	it.facts.Meta = m
	// The canonical ARN and ID (the caller may have used an alias or ID).
	if a := aws.ToString(km.Arn); a != "" {
		it.arn = a
	}
	if id := aws.ToString(km.KeyId); id != "" {
		it.keyID = id
	}
	return nil
}

// listTags learns the tags of a key named explicitly in an incident. One
// ListResourceTags call per such key (≤ 1,000 keys, 2,000 calls/s quota);
// chosen over GetResources with ResourceARNList because it answers for
// untagged keys too, works in the primary's Region for an added primary,
// and keeps every per-key call on kms:* actions the key policy governs.
func (f *fetcher) listTags(ctx context.Context, it *item) error {
	r := f.r
	tags := map[string]string{}
	in := &kms.ListResourceTagsInput{KeyId: aws.String(it.arn)}
	err := f.pages(ctx, opListResourceTags, func(marker *string) (bool, *string, error) {
		in.Marker = marker
		out, err := f.kmsOf(it).ListResourceTags(ctx, in, inRegion(it.region))
		if err != nil {
			return false, nil, err
		}
		for _, t := range out.Tags {
			k := aws.ToString(t.TagKey)
			if r.sel.wantTag(k) {
				tags[k] = strings.Clone(aws.ToString(t.TagValue))
			}
		}
		return out.Truncated, out.NextMarker, nil
	})
	if err != nil {
		return err
	}
	r.sel.applyTags(it, tags)
	return nil
}

// history reads all pages of ListKeyRotations: the budget used is the count
// of ON_DEMAND entries, the age is the newest entry of any type
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_ListKeyRotations.html).
func (f *fetcher) history(ctx context.Context, it *item) error {
	h, err := f.readHistory(ctx, it)
	if err != nil {
		return err
	}
	it.facts.History = h
	return nil
}

func (f *fetcher) readHistory(ctx context.Context, it *item) (*History, error) {
	h := &History{}
	imported := it.facts.Meta != nil && it.facts.Meta.Origin == "EXTERNAL"
	err := f.eachRotation(ctx, it, imported, func(e kmstypes.RotationsListEntry) {
		id := aws.ToString(e.KeyMaterialId)
		switch e.KeyMaterialState {
		case kmstypes.KeyMaterialStateCurrent:
			h.CurrentMaterial, h.CurrentValidTo = strings.Clone(id), e.ValidTo
		case kmstypes.KeyMaterialStatePendingRotation:
			h.Staged = strings.Clone(id)
		case kmstypes.KeyMaterialStatePendingMultiRegionImportAndRotation:
			h.PendingReplicaImport, h.StagedForReplicas = true, strings.Clone(id)
		}
		if e.RotationType == "" || e.RotationDate == nil {
			return // a material that no rotation made current (the first, a staged one)
		}
		d := aws.ToTime(e.RotationDate)
		if e.RotationType == kmstypes.RotationTypeOnDemand {
			h.OnDemand++
			if d.After(h.NewestOnDemand) {
				h.NewestOnDemand = d
			}
		}
		if d.After(h.Newest) {
			h.Newest = d
		}
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// eachRotation calls each for every entry of the key's ListKeyRotations,
// all pages, each call paced. 1,000 entries a page (the maximum) so one
// call covers any real key; imported keys list their staged material too
// (IncludeKeyMaterial ALL_KEY_MATERIAL: PENDING_ROTATION).
func (f *fetcher) eachRotation(ctx context.Context, it *item, allMaterial bool, each func(kmstypes.RotationsListEntry)) error {
	in := &kms.ListKeyRotationsInput{KeyId: aws.String(it.arn), Limit: aws.Int32(1000)}
	if allMaterial {
		in.IncludeKeyMaterial = kmstypes.IncludeKeyMaterialAllKeyMaterial
	}
	return f.pages(ctx, opListKeyRotations, func(marker *string) (bool, *string, error) {
		in.Marker = marker
		out, err := f.kmsOf(it).ListKeyRotations(ctx, in, inRegion(it.region))
		if err != nil {
			return false, nil, err
		}
		for _, e := range out.Rotations {
			each(e)
		}
		return out.Truncated, out.NextMarker, nil
	})
}

// usage reads GetKeyLastUsage: the last successful cryptographic operation
// since KMS began tracking the key
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_GetKeyLastUsage.html).
func (f *fetcher) usage(ctx context.Context, it *item) error {
	u, err := f.lastUsage(ctx, it, it.arn, it.region)
	if err != nil {
		return err
	}
	// KMS tracks a multi-Region key's use per Region: a primary unused in
	// its own Region may be busy in a replica's. It is idle only if the
	// primary and every replica are.
	if m := it.facts.Meta; m != nil {
		for _, rep := range m.Replicas {
			ru, err := f.lastUsage(ctx, it, rep.ARN, rep.Region)
			if err != nil {
				return err
			}
			if ru.LastUsed != nil && (u.LastUsed == nil || ru.LastUsed.After(*u.LastUsed)) {
				u.LastUsed = ru.LastUsed
			}
			if ru.TrackingStart.After(u.TrackingStart) {
				u.TrackingStart = ru.TrackingStart
			}
		}
	}
	it.facts.Usage = u
	return nil
}

// lastUsage is one GetKeyLastUsage, paced at its share of the operation's
// quota (5 per second per account and Region: a 10,000-key report takes
// over half an hour at it).
func (f *fetcher) lastUsage(ctx context.Context, it *item, arn, region string) (*Usage, error) {
	if err := f.call(ctx, opGetKeyLastUsage); err != nil {
		return nil, err
	}
	out, err := f.kmsOf(it).GetKeyLastUsage(ctx, &kms.GetKeyLastUsageInput{KeyId: aws.String(arn)}, inRegion(region))
	if err != nil {
		return nil, err
	}
	u := &Usage{TrackingStart: aws.ToTime(out.TrackingStartDate)}
	if l := out.KeyLastUsage; l != nil && l.Timestamp != nil {
		u.LastUsed = l.Timestamp
	}
	return u, nil
}

// status reads GetKeyRotationStatus: OnDemandRotationStartDate is present only
// while an on-demand rotation is in progress, NextRotationDate while
// automatic rotation is enabled
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_GetKeyRotationStatus.html).
func (f *fetcher) status(ctx context.Context, it *item) error {
	if err := f.call(ctx, opGetKeyRotationStatus); err != nil {
		return err
	}
	out, err := f.kmsOf(it).GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(it.arn)}, inRegion(it.region))
	if err != nil {
		return err
	}
	st := &Status{OnDemandStart: out.OnDemandRotationStartDate}
	if out.KeyRotationEnabled {
		st.NextAutomatic = out.NextRotationDate
	}
	it.facts.Status = st
	return nil
}

// currentMaterial reads DescribeKey's CurrentKeyMaterialId ("" when the
// call fails: no sign either way).
func (f *fetcher) currentMaterial(ctx context.Context, it *item) string {
	if err := f.call(ctx, opDescribeKey); err != nil {
		return ""
	}
	out, err := f.kmsOf(it).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(it.arn)}, inRegion(it.region))
	if err != nil || out.KeyMetadata == nil {
		return ""
	}
	return aws.ToString(out.KeyMetadata.CurrentKeyMaterialId)
}

// pages reads a KMS list page by page, each call paced and counted as op:
// page reads the page after marker (nil: the first) and says whether KMS
// truncated it and where the next begins. A list ends where KMS says it
// is not truncated, or gives no marker.
func (f *fetcher) pages(ctx context.Context, op operation, page func(marker *string) (truncated bool, next *string, err error)) error {
	var marker *string
	for {
		if err := f.call(ctx, op); err != nil {
			return err
		}
		truncated, next, err := page(marker)
		if err != nil {
			return err
		}
		if !truncated || aws.ToString(next) == "" {
			return nil
		}
		marker = next
	}
}

// call waits for the operation's pace and counts the call.
func (f *fetcher) call(ctx context.Context, op operation) error {
	if err := f.r.e.pace.wait(ctx, op); err != nil {
		return err
	}
	f.calls.add(op)
	return nil
}

// operation is a call the engine makes, for call counts, pacing and error
// messages.
type operation uint8

const (
	opGetResources operation = iota
	opListAliases
	opDescribeKey
	opListResourceTags
	opListKeyRotations
	opGetKeyRotationStatus
	opRotateKeyOnDemand
	opGetKeyLastUsage
	numOps
)

// String is the operation's API name, as call counts and errors show it.
func (o operation) String() string {
	return [numOps]string{"GetResources", "ListAliases", "DescribeKey", "ListResourceTags",
		"ListKeyRotations", "GetKeyRotationStatus", "RotateKeyOnDemand", "GetKeyLastUsage"}[o]
}

// callCounts counts API calls per operation (one per SDK operation call,
// retries inside the SDK not included).
type callCounts struct{ n [numOps]atomic.Int64 }

func (c *callCounts) add(op operation) { c.n[op].Add(1) }

// snapshot returns the counts by operation name.
func (c *callCounts) snapshot() map[string]int64 {
	m := make(map[string]int64, numOps)
	for op := range numOps {
		m[op.String()] = c.n[op].Load()
	}
	return m
}
