package kmsemu_test

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	tagtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

func TestLoadFleetRejectsBadEntries(t *testing.T) {
	cases := []struct {
		name, fleet, want string
	}{
		{"not JSON", `{`, "not a JSON array"},
		{"unknown key spec", `[{"keySpec":"AES_999"}]`, `fleet entry 0: keySpec "AES_999"`},
		{"usage invalid for the spec", `[{},{"keySpec":"HMAC_256","keyUsage":"ENCRYPT_DECRYPT"}]`, "fleet entry 1: keyUsage"},
		{"unknown origin", `[{"origin":"MOON"}]`, "origin"},
		{"unknown state", `[{"keyState":"Sleeping"}]`, "keyState"},
		{"unknown rotation type", `[{"rotations":[{"type":"MANUAL","daysAgo":1}]}]`, "rotations[0].type"},
		{"rotations on an HMAC key", `[{"keySpec":"HMAC_256","rotations":[{"type":"ON_DEMAND","daysAgo":1}]}]`, "only symmetric encryption keys"},
		{"malformed key ID", `[{"keyId":"1234"}]`, "is not a key ID"},
		{"mrk ID on a single-Region key", `[{"keyId":"mrk-00000000000000000000000000000001"}]`, "mrk-"},
		{"duplicate key ID", `[{"keyId":"` + keyA + `"},{"keyId":"` + keyA + `"}]`, "fleet entry 1: key " + keyA + " already exists"},
		{"duplicate alias", `[{"alias":"alias/x"},{"alias":"alias/x"}]`, "fleet entry 1: alias alias/x already exists"},
		{"bad alias", `[{"alias":"x"}]`, "alias"},
		{"replica without primary", `[{"multiRegionKeyType":"REPLICA","primaryAlias":"alias/none"}]`, "no multi-Region PRIMARY"},
		{"replica in its primary's region", `[{"alias":"alias/p","multiRegionKeyType":"PRIMARY"},{"multiRegionKeyType":"REPLICA","primaryAlias":"alias/p"}]`, "another region"},
		{"keyId with count", `[{"keyId":"` + keyA + `","count":2}]`, "keyId cannot be combined with count"},
		{"rotation period out of range", `[{"rotationPeriodInDays":30}]`, "not within 90-2560"},
		{"custom key store id without a custom origin", `[{"customKeyStoreId":"cks-1"}]`, "customKeyStoreId needs origin"},
		{"bad region", `[{"region":"Mars"}]`, "region"},
		{"tag value that is an object", `[{"tags":{"a":{"b":1}}}]`, "not a string, number or boolean"},
		{"deny of an unknown operation", `[{"deny":["RotateKeyNow"]}]`, `deny: "RotateKeyNow" is not a KMS operation`},
	}
	for _, c := range cases {
		t.Run(c.name+" is an error naming the problem", func(t *testing.T) {
			s := kmsemu.New(kmsemu.Options{})
			err := s.LoadFleet(strings.NewReader(c.fleet))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	t.Run("a rejected file adds no key", func(t *testing.T) {
		e := start(t, kmsemu.Options{}, "")
		if err := e.emu.Server.LoadFleet(strings.NewReader(`[{"keyId":"` + keyA + `"},{"keySpec":"nope"}]`)); err == nil {
			t.Fatal("bad fleet loaded")
		}
		_, err := e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyA)})
		wantCode(t, err, "NotFoundException")
	})
}

func TestLoadFleetExtensionsAndDefaults(t *testing.T) {
	var log bytes.Buffer
	e := start(t, kmsemu.Options{Log: &log}, `[
	  {"alias":"alias/bulk","count":3,"tags":{"t":"1"},"futureField":true},
	  {"keySpec":"HMAC_512"},
	  {"rotations":[{"type":"ON_DEMAND","daysAgo":10}]},
	  {"alias":"alias/loose","keyState":"disabled","keySpec":"symmetric_default","tags":{"kms-rotator:interval-days":30,"on":true},
	   "createdDaysAgo":5,"rotations":[{"type":"on-demand","daysAgo":9}]},
	  {"alias":"alias/p","region":"eu-west-1","multiRegionKeyType":"primary"},
	  {"alias":"alias/r","multiRegionKeyType":"REPLICA","primaryAlias":"alias/p","automaticRotation":true,"rotations":[{"type":"ON_DEMAND","daysAgo":1}]}
	]`)
	t.Run("count repeats an entry with numbered aliases", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			describe(t, e, "alias/bulk-0000"+strconv.Itoa(i))
		}
	})
	t.Run("counted replicas pair with counted primaries", func(t *testing.T) {
		e := start(t, kmsemu.Options{}, `[{"alias":"alias/g","region":"eu-west-1","multiRegionKeyType":"PRIMARY","count":2},
		  {"alias":"alias/g","multiRegionKeyType":"REPLICA","primaryAlias":"alias/g","count":2}]`)
		eu := kmsClient(e.emu, "eu-west-1")
		for i := 1; i <= 2; i++ {
			name := "alias/g-0000" + strconv.Itoa(i)
			p := must[*kms.DescribeKeyOutput](t)(eu.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(name)})).KeyMetadata
			r := describe(t, e, name).KeyMetadata
			if *p.KeyId != *r.KeyId || *r.MultiRegionConfiguration.PrimaryKey.Region != "eu-west-1" {
				t.Fatalf("%s: primary %s, replica %s", name, *p.KeyId, *r.KeyId)
			}
		}
	})
	t.Run("unknown fields and inconsistencies are warnings, not errors", func(t *testing.T) {
		for _, want := range []string{"futureField", "fleet entry 3: createdDaysAgo 5 is younger than its oldest rotation", "fleet entry 5: a replica shares its primary's rotations", "fleet entry 5: automatic rotation is set on the primary"} {
			if !strings.Contains(log.String(), want) {
				t.Errorf("no warning %q in the log: %q", want, log.String())
			}
		}
	})
	t.Run("enum values in any case, tag numbers and booleans as text", func(t *testing.T) {
		md := describe(t, e, "alias/loose").KeyMetadata
		if md.KeyState != types.KeyStateDisabled || md.KeySpec != types.KeySpecSymmetricDefault {
			t.Fatalf("metadata %+v", md)
		}
		tags := must[*kms.ListResourceTagsOutput](t)(e.kms.ListResourceTags(e.ctx, &kms.ListResourceTagsInput{KeyId: md.KeyId})).Tags
		if len(tags) != 2 || *tags[0].TagKey != "kms-rotator:interval-days" || *tags[0].TagValue != "30" || *tags[1].TagValue != "true" {
			t.Fatalf("tags %+v", tags)
		}
		l := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: md.KeyId}))
		if len(l.Rotations) != 1 || l.Rotations[0].RotationType != types.RotationTypeOnDemand || !md.CreationDate.Equal(e.clock.Now().Add(-10*24*time.Hour)) {
			t.Fatalf("rotations %+v, created %v", l.Rotations, md.CreationDate)
		}
		r := describe(t, e, "alias/r").KeyMetadata
		if r.MultiRegionConfiguration.MultiRegionKeyType != types.MultiRegionKeyTypeReplica {
			t.Fatalf("replica %+v", r.MultiRegionConfiguration)
		}
		if l := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: r.KeyId})); len(l.Rotations) != 0 {
			t.Fatalf("replica has its own rotations %+v", l.Rotations)
		}
	})
	t.Run("defaults: created now, key usage follows the spec, created before the oldest rotation", func(t *testing.T) {
		keys := must[*kms.ListKeysOutput](t)(e.kms.ListKeys(e.ctx, &kms.ListKeysInput{}))
		if len(keys.Keys) != 7 {
			t.Fatalf("%d keys, want 7", len(keys.Keys))
		}
		for _, k := range keys.Keys {
			md := describe(t, e, *k.KeyId).KeyMetadata
			l, err := e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: k.KeyId})
			switch {
			case md.KeySpec == types.KeySpecHmac512:
				if md.KeyUsage != types.KeyUsageTypeGenerateVerifyMac || !md.CreationDate.Equal(e.clock.Now()) {
					t.Fatalf("HMAC key %+v", md)
				}
			case err == nil && len(l.Rotations) == 1 && md.KeyState == types.KeyStateEnabled:
				if want := e.clock.Now().Add(-11 * 24 * time.Hour); !md.CreationDate.Equal(want) {
					t.Fatalf("created %v, want %v", md.CreationDate, want)
				}
			}
		}
	})
}

// reason is the engine's own decision (rotator.Decide) for a key in a
// scheduled sweep with the function's defaults (settings.DefaultConfig),
// from the facts the emulator gives through the SDK as Decide asks for
// them: its reason, or "due" when the sweep would rotate the key. The demo
// fleet must reach every reason a fleet can.
func reason(t *testing.T, e *env, c *kms.Client, keyARN string, tags map[string]string) string {
	t.Helper()
	cfg := settings.DefaultConfig()
	key := aws.String(keyARN)
	f := rotator.Facts{Asked: rotator.Asked{Mode: request.ModeScheduled}, Tags: rotator.Tags{IntervalDays: cfg.IntervalDays}}
	for {
		d := rotator.Decide(f, e.clock.Now(), cfg)
		switch d.Action {
		case rotator.Done:
			return string(d.Reason)
		case rotator.Rotate:
			return "due"
		case rotator.FetchMetadata:
			md := must[*kms.DescribeKeyOutput](t)(c.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: key})).KeyMetadata
			f.Meta = &rotator.Metadata{KeyManager: string(md.KeyManager), KeySpec: string(md.KeySpec), KeyUsage: string(md.KeyUsage),
				Origin: string(md.Origin), KeyState: string(md.KeyState), CreatedAt: aws.ToTime(md.CreationDate),
				Replica:    md.MultiRegionConfiguration != nil && md.MultiRegionConfiguration.MultiRegionKeyType == types.MultiRegionKeyTypeReplica,
				MaterialID: aws.ToString(md.CurrentKeyMaterialId)}
		case rotator.FetchTags:
			v, ok := tags[cfg.TagKey]
			f.TagsKnown, f.OptedIn = true, ok && v == cfg.TagValue
			if v, ok := tags[settings.IntervalTagKey]; ok {
				if n, err := settings.ParseIntervalTag(v, cfg.MinIntervalDays); err != nil {
					f.IntervalErr = err.Error()
				} else {
					f.IntervalDays = n
				}
			}
		case rotator.FetchHistory:
			f.History = history(t, e, c, keyARN, f.Meta.Origin == string(types.OriginTypeExternal))
		case rotator.FetchStatus:
			s := must[*kms.GetKeyRotationStatusOutput](t)(c.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: key}))
			f.Status = &rotator.Status{OnDemandStart: s.OnDemandRotationStartDate, NextAutomatic: s.NextRotationDate}
		default:
			t.Fatalf("%s: Decide asked for %v, which a scheduled sweep with the defaults never reads", keyARN, d.Action)
		}
	}
}

// history is what ListKeyRotations says about a key (with its key
// materials for an imported key), as Decide reads it.
func history(t *testing.T, e *env, c *kms.Client, keyARN string, imported bool) *rotator.History {
	t.Helper()
	in := &kms.ListKeyRotationsInput{KeyId: aws.String(keyARN)}
	if imported {
		in.IncludeKeyMaterial = types.IncludeKeyMaterialAllKeyMaterial
	}
	h := &rotator.History{}
	for _, r := range must[*kms.ListKeyRotationsOutput](t)(c.ListKeyRotations(e.ctx, in)).Rotations {
		switch r.KeyMaterialState {
		case types.KeyMaterialStateCurrent:
			h.CurrentMaterial = aws.ToString(r.KeyMaterialId)
		case types.KeyMaterialStatePendingRotation:
			h.Staged = aws.ToString(r.KeyMaterialId)
		case types.KeyMaterialStatePendingMultiRegionImportAndRotation:
			h.PendingReplicaImport, h.StagedForReplicas = true, aws.ToString(r.KeyMaterialId)
		}
		if r.RotationDate == nil {
			continue // a material no rotation made current
		}
		if r.RotationType == types.RotationTypeOnDemand {
			h.OnDemand++
			h.NewestOnDemand = later(h.NewestOnDemand, *r.RotationDate)
		}
		h.Newest = later(h.Newest, *r.RotationDate)
	}
	return h
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func TestDemoFleet(t *testing.T) {
	data, err := os.ReadFile("../../events/fleet.json")
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, kmsemu.Options{}, string(data))
	reasons := map[string][]string{}
	tagsOf := map[string]map[string]string{}
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		c := kmsClient(e.emu, region)
		p := kms.NewListKeysPaginator(c, &kms.ListKeysInput{})
		for p.HasMorePages() {
			for _, k := range must[*kms.ListKeysOutput](t)(p.NextPage(e.ctx)).Keys {
				tags := map[string]string{}
				for _, tg := range must[*kms.ListResourceTagsOutput](t)(c.ListResourceTags(e.ctx, &kms.ListResourceTagsInput{KeyId: k.KeyId})).Tags {
					tags[*tg.TagKey] = *tg.TagValue
				}
				tagsOf[*k.KeyArn] = tags
				r := reason(t, e, c, *k.KeyArn, tags)
				reasons[r] = append(reasons[r], *k.KeyArn)
			}
		}
	}
	t.Run("about 25 keys", func(t *testing.T) {
		if n := len(tagsOf); n < 20 || n > 30 {
			t.Fatalf("%d keys", n)
		}
	})
	t.Run("every decision reason a fleet can reach is reached", func(t *testing.T) {
		for _, r := range []string{"not-opted-in", "aws-managed", "unsupported-key-spec", "material-not-staged", "custom-key-store",
			"multi-region-replica", "key-not-enabled", "budget-exhausted", "budget-reserved", "not-due", "due"} {
			if len(reasons[r]) == 0 {
				t.Errorf("no key for %s (have %v)", r, reasons)
			}
		}
		if len(reasons["unsupported-key-spec"]) < 2 || len(reasons["key-not-enabled"]) < 2 {
			t.Errorf("want asymmetric and HMAC keys, disabled and pending-deletion keys: %v", reasons)
		}
	})
	t.Run("incident sample keys are opted in, eligible and not due", func(t *testing.T) {
		for _, id := range []string{"1234abcd-12ab-34cd-56ef-1234567890ab", "0987dcba-09fe-87dc-65ba-ab0987654321", "alias/payments"} {
			a := *describe(t, e, id).KeyMetadata.Arn
			if r := reason(t, e, e.kms, a, tagsOf[a]); r != "not-due" {
				t.Errorf("%s: %s, want not-due", id, r)
			}
			if !strings.HasPrefix(a, "arn:aws:kms:us-east-1:"+acct+":key/") {
				t.Errorf("%s: %s", id, a)
			}
		}
	})
	t.Run("a key with an interval override is due, and payments keys exist", func(t *testing.T) {
		found := false
		for _, a := range reasons["due"] {
			if tagsOf[a]["kms-rotator:interval-days"] != "" {
				found = true
			}
		}
		if !found {
			t.Error("no due key with kms-rotator:interval-days")
		}
		ids, _ := resources(t, e, e.tag, &tagging.GetResourcesInput{TagFilters: []tagtypes.TagFilter{
			{Key: aws.String("kms-rotator"), Values: []string{"enabled"}}, {Key: aws.String("team"), Values: []string{"payments"}}}})
		if len(ids) < 3 {
			t.Errorf("%d opted-in payments keys", len(ids))
		}
	})
	t.Run("the multi-Region primary is in another region than its replica", func(t *testing.T) {
		md := describe(t, e, "alias/global-orders").KeyMetadata
		if *md.MultiRegionConfiguration.PrimaryKey.Region != "eu-west-1" {
			t.Fatalf("primary region %s", *md.MultiRegionConfiguration.PrimaryKey.Region)
		}
	})
}

func TestFleetDenyAnswersAccessDenied(t *testing.T) {
	e := start(t, kmsemu.Options{RotationDelay: time.Second}, `[{"keyId":"`+keyA+`","deny":["RotateKeyOnDemand"]}]`)
	t.Run("a denied operation → AccessDeniedException, nothing rotated", func(t *testing.T) {
		_, err := e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyA)})
		wantCode(t, err, "AccessDeniedException")
		st, err := e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyA)})
		if err != nil {
			t.Fatal(err)
		}
		if st.OnDemandRotationStartDate != nil {
			t.Fatal("a denied rotation started")
		}
	})
	t.Run("operations not listed still work", func(t *testing.T) {
		if _, err := e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyA)}); err != nil {
			t.Fatal(err)
		}
	})
}
