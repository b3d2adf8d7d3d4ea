package oracle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// Key is what KMS (the emulator) says, through the SDK, about one key.
type Key struct {
	KeyID, KeyARN, Region string
	// OnDemand counts the ON_DEMAND entries of ListKeyRotations (all
	// pages): completed rotations.
	OnDemand int
	// InProgress is GetKeyRotationStatus.OnDemandRotationStartDate != nil:
	// KMS lists a rotation only once it completes.
	InProgress bool
	// Material is DescribeKey's CurrentKeyMaterialId (empty for keys
	// without one).
	Material string
	// Staged is the key material of an imported (EXTERNAL) key that waits
	// for RotateKeyOnDemand: ListKeyRotations with ALL_KEY_MATERIAL lists it
	// PENDING_ROTATION, or PENDING_MULTI_REGION_IMPORT_AND_ROTATION while a
	// replica lacks it (then PendingReplicas is true).
	Staged          string
	PendingReplicas bool
	// Alias (the first by name) and Tags are read when Reader.Tags is set.
	Alias string
	Tags  map[string]string
}

// Started counts the on-demand rotations KMS has accepted for the key: the
// completed ones plus one in progress. A rotation moves from the second
// term to the first when it completes, so the sum never counts one twice.
func (k Key) Started() int {
	if k.InProgress {
		return k.OnDemand + 1
	}
	return k.OnDemand
}

// Snapshot is every key KMS lists, by key ARN.
type Snapshot map[string]Key

// Tagged returns the ARNs of the keys carrying the tag, sorted (a sweep's
// candidates are the keys with the opt-in tag; read with Reader.Tags).
func (s Snapshot) Tagged(key, value string) []string {
	var out []string
	for _, arn := range slices.Sorted(maps.Keys(s)) {
		if v, ok := s[arn].Tags[key]; ok && v == value {
			out = append(out, arn)
		}
	}
	return out
}

// Reader reads a Snapshot through the real SDK. It does not use the
// tagging API's GetResources (the engine's own listing path), so a listing
// bug cannot hide itself.
type Reader struct {
	// Clients read one Region (and account) each: every key ListKeys
	// lists there.
	Clients []*kms.Client
	// Tags also reads each key's tags (ListResourceTags) and aliases
	// (ListAliases, once per client).
	Tags bool
	// Parallel is how many keys are read at once (default 16: the
	// emulator's latency applies to these calls too).
	Parallel int
}

// Read takes a snapshot of the keys the clients see (Reader.Read without
// tags).
func Read(ctx context.Context, clients ...*kms.Client) (Snapshot, error) {
	return Reader{Clients: clients}.Read(ctx)
}

// Read lists every key of each client (ListKeys), then reads per key
// DescribeKey, for an imported key its staged material (ListKeyRotations
// with ALL_KEY_MATERIAL), and its rotations: GetKeyRotationStatus and
// ListKeyRotations (and the status again while a rotation is in progress).
func (rd Reader) Read(ctx context.Context) (Snapshot, error) {
	type job struct {
		client  *kms.Client
		key     Key
		aliases map[string][]string
	}
	var jobs []job
	for _, c := range rd.Clients {
		region := c.Options().Region
		var aliases map[string][]string
		if rd.Tags {
			var err error
			if aliases, err = listAliases(ctx, c); err != nil {
				return nil, fmt.Errorf("oracle: ListAliases %s: %w", region, err)
			}
		}
		p := kms.NewListKeysPaginator(c, &kms.ListKeysInput{})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("oracle: ListKeys %s: %w", region, err)
			}
			for _, k := range page.Keys {
				jobs = append(jobs, job{c, Key{KeyID: aws.ToString(k.KeyId), KeyARN: aws.ToString(k.KeyArn), Region: region}, aliases})
			}
		}
	}
	errs := make([]error, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range cmp.Or(rd.Parallel, 16) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(jobs); i = int(next.Add(1)) - 1 {
				j := &jobs[i]
				if names := j.aliases[j.key.KeyID]; len(names) > 0 {
					j.key.Alias = names[0]
				}
				errs[i] = readKey(ctx, j.client, &j.key, rd.Tags)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make(Snapshot, len(jobs))
	for _, j := range jobs {
		out[j.key.KeyARN] = j.key
	}
	return out, nil
}

// Observer is a KMS client that retries hard (40 attempts, no client-side
// rate limit), so injected faults and throttling never hide the truth from
// a snapshot.
func Observer(cfg aws.Config) *kms.Client {
	return kms.NewFromConfig(cfg, func(o *kms.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 40
			so.MaxBackoff = 250 * time.Millisecond
			so.RateLimiter = ratelimit.None
		})
	})
}

// listAliases maps key IDs to their alias names, sorted.
func listAliases(ctx context.Context, c *kms.Client) (map[string][]string, error) {
	out := map[string][]string{}
	p := kms.NewListAliasesPaginator(c, &kms.ListAliasesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, a := range page.Aliases {
			if id := aws.ToString(a.TargetKeyId); id != "" {
				out[id] = append(out[id], aws.ToString(a.AliasName))
			}
		}
	}
	for _, names := range out {
		slices.Sort(names)
	}
	return out, nil
}

func readKey(ctx context.Context, c *kms.Client, k *Key, tags bool) error {
	id := aws.String(k.KeyID)
	d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: id})
	if err != nil {
		return fmt.Errorf("oracle: DescribeKey %s: %w", k.KeyARN, err)
	}
	k.Material = aws.ToString(d.KeyMetadata.CurrentKeyMaterialId)
	if tags {
		k.Tags = map[string]string{}
		p := kms.NewListResourceTagsPaginator(c, &kms.ListResourceTagsInput{KeyId: id})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("oracle: ListResourceTags %s: %w", k.KeyARN, err)
			}
			for _, t := range page.Tags {
				k.Tags[aws.ToString(t.TagKey)] = aws.ToString(t.TagValue)
			}
		}
	}
	if d.KeyMetadata.Origin == types.OriginTypeExternal {
		if err := readStaged(ctx, c, k); err != nil && !noRotations(err) {
			return fmt.Errorf("oracle: ListKeyRotations ALL_KEY_MATERIAL %s: %w", k.KeyARN, err)
		}
	}
	// KMS lists an on-demand rotation only once it completes: one in
	// progress at the first status read may complete before the listing
	// (counted twice) or after it (not at all), so then the status is read
	// again until both reads agree. No rotation starts while a snapshot
	// is taken.
	for {
		before, err := inProgress(ctx, c, id)
		if err != nil {
			return fmt.Errorf("oracle: GetKeyRotationStatus %s: %w", k.KeyARN, err)
		}
		if k.OnDemand, err = countOnDemand(ctx, c, id); err != nil && !noRotations(err) {
			return fmt.Errorf("oracle: ListKeyRotations %s: %w", k.KeyARN, err)
		}
		if !before {
			k.InProgress = false
			return nil
		}
		after, err := inProgress(ctx, c, id)
		if err != nil {
			return fmt.Errorf("oracle: GetKeyRotationStatus %s: %w", k.KeyARN, err)
		}
		if after {
			k.InProgress = true
			return nil
		}
	}
}

// noRotations reports whether err is how KMS answers a rotation call for a
// key without rotations to show: rotation unsupported (asymmetric, HMAC,
// AWS managed, custom key store) or the key's state (disabled, pending
// deletion, an imported key pending import)
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_ListKeyRotations.html).
func noRotations(err error) bool {
	var unsupported *types.UnsupportedOperationException
	var state *types.KMSInvalidStateException
	return errors.As(err, &unsupported) || errors.As(err, &state)
}

// inProgress reports whether an on-demand rotation of the key is in
// progress (false for keys rotation does not apply to).
func inProgress(ctx context.Context, c *kms.Client, id *string) (bool, error) {
	status, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: id})
	switch {
	case noRotations(err):
		return false, nil
	case err != nil:
		return false, err
	}
	return status.OnDemandRotationStartDate != nil, nil
}

// readStaged finds an imported key's staged material
// (https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-rotate.html).
func readStaged(ctx context.Context, c *kms.Client, k *Key) error {
	p := kms.NewListKeyRotationsPaginator(c, &kms.ListKeyRotationsInput{KeyId: aws.String(k.KeyID), IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, r := range page.Rotations {
			switch r.KeyMaterialState {
			case types.KeyMaterialStatePendingRotation:
				k.Staged = aws.ToString(r.KeyMaterialId)
			case types.KeyMaterialStatePendingMultiRegionImportAndRotation:
				k.Staged, k.PendingReplicas = aws.ToString(r.KeyMaterialId), true
			}
		}
	}
	return nil
}

func countOnDemand(ctx context.Context, c *kms.Client, id *string) (int, error) {
	n := 0
	p := kms.NewListKeyRotationsPaginator(c, &kms.ListKeyRotationsInput{KeyId: id})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		for _, r := range page.Rotations {
			if r.RotationType == types.RotationTypeOnDemand {
				n++
			}
		}
	}
	return n, nil
}
