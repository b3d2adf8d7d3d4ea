package oracle

import (
	"io"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

func TestReadSnapshotsTheEmulator(t *testing.T) {
	emu := emutest.Start(t, kmsemu.Options{RotationDelay: time.Hour, Log: io.Discard}, `[
	 {"alias":"alias/spent","tags":{"kms-rotator":"enabled"},"createdDaysAgo":300,"rotations":[{"type":"ON_DEMAND","daysAgo":100},{"type":"AUTOMATIC","daysAgo":50},{"type":"ON_DEMAND","daysAgo":20}]},
	 {"alias":"alias/b-name","tags":{"kms-rotator":"enabled"},"createdDaysAgo":300},
	 {"alias":"alias/staged","origin":"EXTERNAL","stagedMaterial":true,"createdDaysAgo":200},
	 {"alias":"alias/hmac","keySpec":"HMAC_256","createdDaysAgo":10},
	 {"alias":"alias/eu","region":"eu-west-1","tags":{"team":"x"}}]`)
	us, eu := emu.KMS("us-east-1"), emu.KMS("eu-west-1")
	ctx := t.Context()
	// Another alias for alias/b-name's key that sorts first, and a
	// rotation in progress for it.
	b, err := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/b-name")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := us.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/a-name"), TargetKeyId: b.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	if _, err := us.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: b.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	s, err := Reader{Clients: []*kms.Client{us, eu}, Tags: true}.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 5 {
		t.Fatalf("%d keys, want 5: %+v", len(s), s)
	}
	byAlias := map[string]Key{}
	for arn, k := range s {
		if k.KeyARN != arn || k.KeyID == "" || k.Material == "" && k.Alias != "alias/hmac" {
			t.Errorf("%s: %+v", arn, k)
		}
		byAlias[k.Alias] = k
	}
	for alias, want := range map[string]struct {
		onDemand, started int
		region            string
	}{
		"alias/spent": {2, 2, "us-east-1"}, "alias/a-name": {0, 1, "us-east-1"}, "alias/staged": {0, 0, "us-east-1"},
		"alias/hmac": {0, 0, "us-east-1"}, "alias/eu": {0, 0, "eu-west-1"},
	} {
		k, ok := byAlias[alias]
		if !ok {
			t.Errorf("no key with first alias %s", alias)
			continue
		}
		if k.OnDemand != want.onDemand || k.Started() != want.started || k.Region != want.region {
			t.Errorf("%s: %d on demand, %d started, Region %s; want %d, %d, %s", alias, k.OnDemand, k.Started(), k.Region, want.onDemand, want.started, want.region)
		}
	}
	if k := byAlias["alias/staged"]; k.Staged == "" || k.Staged == k.Material || k.PendingReplicas {
		t.Errorf("imported key with staged material: %+v", k)
	}
	if got, want := s.Tagged("kms-rotator", "enabled"), []string{byAlias["alias/a-name"].KeyARN, byAlias["alias/spent"].KeyARN}; !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("opted in %v, want %v", got, want)
	}
	t.Run("without tags only the rotations are read", func(t *testing.T) {
		plain, err := Read(ctx, us)
		if err != nil {
			t.Fatal(err)
		}
		k := plain[byAlias["alias/spent"].KeyARN]
		if len(plain) != 4 || k.Tags != nil || k.Alias != "" || k.Started() != 2 {
			t.Errorf("%d keys; alias/spent %+v", len(plain), k)
		}
	})
}
