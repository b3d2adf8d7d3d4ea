package main

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// baselineResult is the naive sweep's measurement.
type baselineResult struct {
	Keys        int     // keys in the account (ListKeys)
	Checked     int     // keys walked one at a time (all, or the sample)
	Rotated     int     // rotations it started among the checked keys
	ListSeconds float64 // ListKeys, all pages
	WallSeconds float64 // measured (listing + the checked keys)
	// EstimatedSeconds is the whole-fleet time: measured when every key was
	// checked, else listing + the mean time per checked key × Keys.
	EstimatedSeconds float64
	Sampled          bool
}

// runBaseline sweeps the way existing tools do: ListKeys, then per key
// ListResourceTags, DescribeKey, GetKeyRotationStatus and ListKeyRotations,
// one key at a time, rotating a due key on the spot. It stops after sample
// keys (0 = all) and extrapolates, so a 10,000-key baseline stays within
// the bench's time budget.
func runBaseline(ctx context.Context, c *kms.Client, tagKey, tagValue string, intervalDays, limit, reserve, sample int) (baselineResult, error) {
	var res baselineResult
	start := time.Now()
	var ids []string
	in := &kms.ListKeysInput{Limit: aws.Int32(1000)}
	for {
		out, err := c.ListKeys(ctx, in)
		if err != nil {
			return res, fmt.Errorf("baseline: list keys: %w", err)
		}
		for _, k := range out.Keys {
			ids = append(ids, aws.ToString(k.KeyId))
		}
		if !out.Truncated {
			break
		}
		in.Marker = out.NextMarker
	}
	res.Keys = len(ids)
	res.ListSeconds = time.Since(start).Seconds()
	walk := ids
	if sample > 0 && sample < len(ids) {
		walk, res.Sampled = ids[:sample], true
	}
	walkStart := time.Now()
	for _, id := range walk {
		rotated, err := baselineKey(ctx, c, id, tagKey, tagValue, intervalDays, limit, reserve)
		if err != nil {
			return res, fmt.Errorf("baseline: key %s: %w", id, err)
		}
		if rotated {
			res.Rotated++
		}
		res.Checked++
	}
	walkSeconds := time.Since(walkStart).Seconds()
	res.WallSeconds = time.Since(start).Seconds()
	res.EstimatedSeconds = res.WallSeconds
	if res.Sampled && res.Checked > 0 {
		res.EstimatedSeconds = res.ListSeconds + walkSeconds/float64(res.Checked)*float64(res.Keys)
	}
	return res, nil
}

// baselineKey checks one key and rotates it when due.
func baselineKey(ctx context.Context, c *kms.Client, id, tagKey, tagValue string, intervalDays, limit, reserve int) (bool, error) {
	optedIn := false
	tin := &kms.ListResourceTagsInput{KeyId: aws.String(id)}
	for {
		out, err := c.ListResourceTags(ctx, tin)
		if err != nil {
			return false, err
		}
		for _, t := range out.Tags {
			if aws.ToString(t.TagKey) == tagKey && aws.ToString(t.TagValue) == tagValue {
				optedIn = true
			}
		}
		if !out.Truncated {
			break
		}
		tin.Marker = out.NextMarker
	}
	if !optedIn {
		return false, nil
	}
	d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	if err != nil {
		return false, err
	}
	m := d.KeyMetadata
	if m.KeyManager != kmstypes.KeyManagerTypeCustomer || m.KeySpec != kmstypes.KeySpecSymmetricDefault ||
		m.Origin != kmstypes.OriginTypeAwsKms || m.KeyState != kmstypes.KeyStateEnabled {
		return false, nil
	}
	st, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(id)})
	if err != nil {
		return false, err
	}
	used := 0
	newest := aws.ToTime(m.CreationDate)
	rin := &kms.ListKeyRotationsInput{KeyId: aws.String(id)}
	for {
		out, err := c.ListKeyRotations(ctx, rin)
		if err != nil {
			return false, err
		}
		for _, r := range out.Rotations {
			if r.RotationType == kmstypes.RotationTypeOnDemand {
				used++
			}
			if t := aws.ToTime(r.RotationDate); t.After(newest) {
				newest = t
			}
		}
		if !out.Truncated {
			break
		}
		rin.Marker = out.NextMarker
	}
	due := time.Since(newest) >= time.Duration(intervalDays)*24*time.Hour
	if !due || st.OnDemandRotationStartDate != nil || limit-used <= reserve {
		return false, nil
	}
	if _, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)}); err != nil {
		return false, err
	}
	return true, nil
}
