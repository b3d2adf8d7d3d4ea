package kmsemu_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

var opts = kmsemu.Options{RotationDelay: 2 * time.Second, OnDemandLimit: 3}

func TestDescribeKey(t *testing.T) {
	e := start(t, opts, testFleet)
	t.Run("every identifier form names the key", func(t *testing.T) {
		for _, id := range []string{keyA, arn("us-east-1", keyA), "alias/a", "arn:aws:kms:us-east-1:" + acct + ":alias/a"} {
			md := describe(t, e, id).KeyMetadata
			if aws.ToString(md.KeyId) != keyA || aws.ToString(md.Arn) != arn("us-east-1", keyA) {
				t.Fatalf("%s: got key %s %s", id, aws.ToString(md.KeyId), aws.ToString(md.Arn))
			}
		}
	})
	t.Run("metadata has KMS's fields and defaults", func(t *testing.T) {
		md := describe(t, e, keyA).KeyMetadata
		if aws.ToString(md.AWSAccountId) != acct || md.KeyManager != types.KeyManagerTypeCustomer || md.KeySpec != types.KeySpecSymmetricDefault ||
			md.KeyUsage != types.KeyUsageTypeEncryptDecrypt || md.Origin != types.OriginTypeAwsKms || md.KeyState != types.KeyStateEnabled || !md.Enabled ||
			aws.ToBool(md.MultiRegion) || len(aws.ToString(md.CurrentKeyMaterialId)) != 64 || len(md.EncryptionAlgorithms) != 1 {
			t.Fatalf("unexpected metadata %+v", md)
		}
		if age := e.clock.Now().Sub(*md.CreationDate); age != 100*24*time.Hour {
			t.Fatalf("CreationDate is %v old, want 100 days", age)
		}
	})
	t.Run("kinds of keys show their spec, origin, manager and store", func(t *testing.T) {
		cases := []struct {
			id    string
			check func(*types.KeyMetadata) bool
		}{
			{keyHMAC, func(m *types.KeyMetadata) bool {
				return m.KeySpec == types.KeySpecHmac256 && m.KeyUsage == types.KeyUsageTypeGenerateVerifyMac && len(m.MacAlgorithms) == 1 && m.CurrentKeyMaterialId == nil
			}},
			{keyRSA, func(m *types.KeyMetadata) bool {
				return m.KeySpec == types.KeySpecRsa2048 && len(m.SigningAlgorithms) > 0
			}},
			{keyExt, func(m *types.KeyMetadata) bool {
				return m.Origin == types.OriginTypeExternal && m.ExpirationModel != ""
			}},
			{keyHSM, func(m *types.KeyMetadata) bool {
				return m.Origin == types.OriginTypeAwsCloudhsm && aws.ToString(m.CustomKeyStoreId) == "cks-1234567890abcdef0" && m.CloudHsmClusterId != nil
			}},
			{keyXKS, func(m *types.KeyMetadata) bool {
				return m.Origin == types.OriginTypeExternalKeyStore && m.XksKeyConfiguration != nil
			}},
			{keyAWS, func(m *types.KeyMetadata) bool { return m.KeyManager == types.KeyManagerTypeAws }},
			{keyDis, func(m *types.KeyMetadata) bool { return m.KeyState == types.KeyStateDisabled && !m.Enabled }},
			{keyDel, func(m *types.KeyMetadata) bool {
				return m.KeyState == types.KeyStatePendingDeletion && m.DeletionDate != nil && m.DeletionDate.Sub(e.clock.Now()) == 7*24*time.Hour
			}},
		}
		for _, c := range cases {
			if md := describe(t, e, c.id).KeyMetadata; !c.check(md) {
				t.Errorf("%s: unexpected metadata %+v", c.id, md)
			}
		}
	})
	t.Run("replica names its primary in another region", func(t *testing.T) {
		md := describe(t, e, "alias/global-replica").KeyMetadata
		mr := md.MultiRegionConfiguration
		if aws.ToString(md.KeyId) != mrk || mr == nil || mr.MultiRegionKeyType != types.MultiRegionKeyTypeReplica ||
			aws.ToString(mr.PrimaryKey.Arn) != arn("eu-west-1", mrk) || aws.ToString(mr.PrimaryKey.Region) != "eu-west-1" {
			t.Fatalf("unexpected replica metadata %+v %+v", md, mr)
		}
		eu := kmsClient(e.emu, "eu-west-1")
		p := must[*kms.DescribeKeyOutput](t)(eu.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/global")})).KeyMetadata
		pr := p.MultiRegionConfiguration
		if pr.MultiRegionKeyType != types.MultiRegionKeyTypePrimary || len(pr.ReplicaKeys) != 1 || aws.ToString(pr.ReplicaKeys[0].Arn) != arn("us-east-1", mrk) {
			t.Fatalf("unexpected primary configuration %+v", pr)
		}
	})
	errCases := []struct {
		name, id, code string
	}{
		{"unknown key ID is NotFoundException", "11111111-1111-4111-8111-111111111111", "NotFoundException"},
		{"unknown alias is NotFoundException", "alias/nope", "NotFoundException"},
		{"malformed key ID is NotFoundException", "not-a-key", "NotFoundException"},
		{"empty key ID is ValidationException", "", "ValidationException"},
		{"malformed ARN is InvalidArnException", "arn:aws:kms:us-east-1:123:key", "InvalidArnException"},
		{"another account's key is AccessDeniedException", "arn:aws:kms:us-east-1:999999999999:key/" + keyA, "AccessDeniedException"},
		{"a key ARN of another region is NotFoundException", arn("us-west-2", keyA), "NotFoundException"},
		{"a key of another region is not found by ID", "alias/global", "NotFoundException"},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(c.id)})
			wantCode(t, err, c.code)
		})
	}
	t.Run("key is gone after its deletion date", func(t *testing.T) {
		e := start(t, opts, testFleet)
		e.clock.Advance(7*24*time.Hour + time.Second)
		_, err := e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyDel)})
		wantCode(t, err, "NotFoundException")
	})
}

func TestRotateKeyOnDemand(t *testing.T) {
	t.Run("rotation is in progress, then completes as ON_DEMAND with new material", func(t *testing.T) {
		e := start(t, opts, testFleet)
		before := describe(t, e, keyB).KeyMetadata.CurrentKeyMaterialId
		out := must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyB)}))
		if aws.ToString(out.KeyId) != arn("us-east-1", keyB) {
			t.Fatalf("KeyId = %s, want the key ARN", aws.ToString(out.KeyId))
		}
		st := must[*kms.GetKeyRotationStatusOutput](t)(e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyB)}))
		if st.OnDemandRotationStartDate == nil || !st.OnDemandRotationStartDate.Equal(e.clock.Now()) {
			t.Fatalf("OnDemandRotationStartDate = %v, want %v", st.OnDemandRotationStartDate, e.clock.Now())
		}
		_, err := e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(arn("us-east-1", keyB))})
		wantCode(t, err, "ConflictException")
		if l := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyB)})); len(l.Rotations) != 0 {
			t.Fatalf("a rotation in progress is listed: %+v", l.Rotations)
		}
		if cur := describe(t, e, keyB).KeyMetadata.CurrentKeyMaterialId; aws.ToString(cur) != aws.ToString(before) {
			t.Fatal("key material changed before the rotation completed")
		}

		e.clock.Advance(2 * time.Second)
		st = must[*kms.GetKeyRotationStatusOutput](t)(e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyB)}))
		if st.OnDemandRotationStartDate != nil {
			t.Fatalf("still in progress after the delay: %v", st.OnDemandRotationStartDate)
		}
		l := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyB)}))
		if len(l.Rotations) != 1 || l.Rotations[0].RotationType != types.RotationTypeOnDemand || !l.Rotations[0].RotationDate.Equal(e.clock.Now()) ||
			l.Rotations[0].KeyMaterialState != types.KeyMaterialStateCurrent || aws.ToString(l.Rotations[0].KeyId) != arn("us-east-1", keyB) {
			t.Fatalf("unexpected rotations %+v", l.Rotations)
		}
		cur := describe(t, e, keyB).KeyMetadata.CurrentKeyMaterialId
		if aws.ToString(cur) == aws.ToString(before) || aws.ToString(cur) != aws.ToString(l.Rotations[0].KeyMaterialId) {
			t.Fatalf("CurrentKeyMaterialId %s, before %s, rotation %s", aws.ToString(cur), aws.ToString(before), aws.ToString(l.Rotations[0].KeyMaterialId))
		}
	})
	t.Run("zero delay completes at once", func(t *testing.T) {
		e := start(t, kmsemu.Options{}, testFleet)
		must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyB)}))
		l := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyB)}))
		if len(l.Rotations) != 1 {
			t.Fatalf("got %d rotations, want 1", len(l.Rotations))
		}
	})
	t.Run("lifetime limit is LimitExceededException", func(t *testing.T) {
		e := start(t, opts, testFleet)
		_, err := e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyFull)})
		wantCode(t, err, "LimitExceededException")
		// keyB reaches the limit of 3 after three rotations
		for i := 0; i < 3; i++ {
			must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyB)}))
			e.clock.Advance(time.Minute)
		}
		_, err = e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyB)})
		wantCode(t, err, "LimitExceededException")
	})
	t.Run("automatic rotation within 20 minutes is ConflictException", func(t *testing.T) {
		e := start(t, opts, testFleet)
		must[*kms.EnableKeyRotationOutput](t)(e.kms.EnableKeyRotation(e.ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(keyB), RotationPeriodInDays: aws.Int32(90)}))
		e.clock.Advance(90*24*time.Hour - 10*time.Minute)
		_, err := e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyB)})
		wantCode(t, err, "ConflictException")
	})
	t.Run("primary rotation shows on its replica", func(t *testing.T) {
		e := start(t, kmsemu.Options{}, testFleet)
		eu := kmsClient(e.emu, "eu-west-1")
		must[*kms.RotateKeyOnDemandOutput](t)(eu.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(mrk)}))
		l := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(mrk)}))
		if len(l.Rotations) != 1 || aws.ToString(l.Rotations[0].KeyId) != arn("us-east-1", mrk) {
			t.Fatalf("replica rotations %+v", l.Rotations)
		}
		p := must[*kms.DescribeKeyOutput](t)(eu.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(mrk)}))
		if aws.ToString(describe(t, e, mrk).KeyMetadata.CurrentKeyMaterialId) != aws.ToString(p.KeyMetadata.CurrentKeyMaterialId) {
			t.Fatal("replica and primary key material differ")
		}
	})
	errCases := []struct {
		name, id, code string
	}{
		{"replica is UnsupportedOperationException", mrk, "UnsupportedOperationException"},
		{"HMAC key is UnsupportedOperationException", keyHMAC, "UnsupportedOperationException"},
		{"asymmetric key is UnsupportedOperationException", keyRSA, "UnsupportedOperationException"},
		{"imported key material with nothing staged is KMSInvalidStateException", keyExt, "KMSInvalidStateException"},
		{"CloudHSM key store is UnsupportedOperationException", keyHSM, "UnsupportedOperationException"},
		{"external key store is UnsupportedOperationException", keyXKS, "UnsupportedOperationException"},
		{"AWS managed key is UnsupportedOperationException", keyAWS, "UnsupportedOperationException"},
		{"disabled key is DisabledException", keyDis, "DisabledException"},
		{"key pending deletion is KMSInvalidStateException", keyDel, "KMSInvalidStateException"},
		{"alias is NotFoundException (key ID or ARN only)", "alias/b", "NotFoundException"},
		{"unknown key is NotFoundException", "11111111-1111-4111-8111-111111111111", "NotFoundException"},
		{"malformed ARN is InvalidArnException", "arn:aws:kms:xx", "InvalidArnException"},
	}
	e := start(t, opts, testFleet)
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(c.id)})
			wantCode(t, err, c.code)
		})
	}
}

func TestKeyRotationStatusAndSettings(t *testing.T) {
	e := start(t, opts, testFleet)
	t.Run("disabled by default, without period or next date", func(t *testing.T) {
		st := must[*kms.GetKeyRotationStatusOutput](t)(e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyB)}))
		if st.KeyRotationEnabled || st.RotationPeriodInDays != nil || st.NextRotationDate != nil || aws.ToString(st.KeyId) != arn("us-east-1", keyB) {
			t.Fatalf("unexpected status %+v", st)
		}
	})
	t.Run("enabled with a period shows it and the next date", func(t *testing.T) {
		must[*kms.EnableKeyRotationOutput](t)(e.kms.EnableKeyRotation(e.ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(keyB), RotationPeriodInDays: aws.Int32(180)}))
		st := must[*kms.GetKeyRotationStatusOutput](t)(e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyB)}))
		if !st.KeyRotationEnabled || aws.ToInt32(st.RotationPeriodInDays) != 180 || !st.NextRotationDate.Equal(e.clock.Now().AddDate(0, 0, 180)) {
			t.Fatalf("unexpected status %+v", st)
		}
	})
	t.Run("automatic rotation happens when due", func(t *testing.T) {
		e.clock.Advance(181 * 24 * time.Hour)
		l := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyB)}))
		if len(l.Rotations) != 1 || l.Rotations[0].RotationType != types.RotationTypeAutomatic {
			t.Fatalf("unexpected rotations %+v", l.Rotations)
		}
	})
	t.Run("disabling clears the period", func(t *testing.T) {
		must[*kms.DisableKeyRotationOutput](t)(e.kms.DisableKeyRotation(e.ctx, &kms.DisableKeyRotationInput{KeyId: aws.String(keyB)}))
		st := must[*kms.GetKeyRotationStatusOutput](t)(e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyB)}))
		if st.KeyRotationEnabled || st.RotationPeriodInDays != nil {
			t.Fatalf("unexpected status %+v", st)
		}
	})
	t.Run("pending deletion shows rotation disabled, cancelling restores it", func(t *testing.T) {
		must[*kms.EnableKeyRotationOutput](t)(e.kms.EnableKeyRotation(e.ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(keyA)}))
		must[*kms.ScheduleKeyDeletionOutput](t)(e.kms.ScheduleKeyDeletion(e.ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyA)}))
		st := must[*kms.GetKeyRotationStatusOutput](t)(e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyA)}))
		if st.KeyRotationEnabled || st.RotationPeriodInDays != nil {
			t.Fatalf("pending deletion: %+v", st)
		}
		must[*kms.CancelKeyDeletionOutput](t)(e.kms.CancelKeyDeletion(e.ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(keyA)}))
		st = must[*kms.GetKeyRotationStatusOutput](t)(e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyA)}))
		if !st.KeyRotationEnabled || aws.ToInt32(st.RotationPeriodInDays) != 365 {
			t.Fatalf("after cancel: %+v", st)
		}
		must[*kms.EnableKeyOutput](t)(e.kms.EnableKey(e.ctx, &kms.EnableKeyInput{KeyId: aws.String(keyA)}))
	})
	t.Run("AWS managed keys rotate yearly", func(t *testing.T) {
		st := must[*kms.GetKeyRotationStatusOutput](t)(e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyAWS)}))
		if !st.KeyRotationEnabled || aws.ToInt32(st.RotationPeriodInDays) != 365 {
			t.Fatalf("unexpected status %+v", st)
		}
	})
	periods := []struct {
		name   string
		period int32
		code   string
	}{
		{"period 89 is ValidationException", 89, "ValidationException"},
		{"period 90 is accepted", 90, ""},
		{"period 2560 is accepted", 2560, ""},
		{"period 2561 is ValidationException", 2561, "ValidationException"},
	}
	for _, c := range periods {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.kms.EnableKeyRotation(e.ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(keyA), RotationPeriodInDays: aws.Int32(c.period)})
			wantCode(t, err, c.code)
		})
	}
	errCases := []struct {
		name, id, code string
	}{
		{"HMAC key is UnsupportedOperationException", keyHMAC, "UnsupportedOperationException"},
		{"imported key is UnsupportedOperationException", keyExt, "UnsupportedOperationException"},
		{"replica is UnsupportedOperationException", mrk, "UnsupportedOperationException"},
		{"disabled key is DisabledException", keyDis, "DisabledException"},
		{"key pending deletion is KMSInvalidStateException", keyDel, "KMSInvalidStateException"},
		{"AWS managed key is UnsupportedOperationException", keyAWS, "UnsupportedOperationException"},
	}
	e = start(t, opts, testFleet)
	for _, c := range errCases {
		t.Run("enable on "+c.name, func(t *testing.T) {
			_, err := e.kms.EnableKeyRotation(e.ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(c.id)})
			wantCode(t, err, c.code)
			_, err = e.kms.DisableKeyRotation(e.ctx, &kms.DisableKeyRotationInput{KeyId: aws.String(c.id)})
			wantCode(t, err, c.code)
		})
	}
	t.Run("status of an HMAC key is UnsupportedOperationException", func(t *testing.T) {
		_, err := e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyHMAC)})
		wantCode(t, err, "UnsupportedOperationException")
		_, err = e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyHSM)})
		wantCode(t, err, "UnsupportedOperationException")
	})
}

func TestListKeyRotationsPaginates(t *testing.T) {
	e := start(t, kmsemu.Options{OnDemandLimit: 100}, testFleet)
	for i := 0; i < 7; i++ {
		must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyA)}))
		e.clock.Advance(time.Hour)
	}
	var all []types.RotationsListEntry
	pages := 0
	p := kms.NewListKeyRotationsPaginator(e.kms, &kms.ListKeyRotationsInput{KeyId: aws.String(keyA), Limit: aws.Int32(4)})
	for p.HasMorePages() {
		out := must[*kms.ListKeyRotationsOutput](t)(p.NextPage(e.ctx))
		all = append(all, out.Rotations...)
		pages++
	}
	if len(all) != 9 || pages != 3 {
		t.Fatalf("got %d rotations in %d pages, want 9 in 3", len(all), pages)
	}
	if all[0].RotationType != types.RotationTypeAutomatic || all[1].RotationType != types.RotationTypeOnDemand {
		t.Fatalf("history not oldest first: %v %v", all[0].RotationType, all[1].RotationType)
	}
	for i := 1; i < len(all); i++ {
		if all[i].RotationDate.Before(*all[i-1].RotationDate) {
			t.Fatal("rotations not in date order")
		}
	}
	t.Run("ALL_KEY_MATERIAL adds the original key material first", func(t *testing.T) {
		l := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyA), IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial, Limit: aws.Int32(2)}))
		if len(l.Rotations) != 2 || l.Rotations[0].RotationType != "" || l.Rotations[0].RotationDate != nil || l.Rotations[1].RotationType != types.RotationTypeAutomatic || !l.Truncated {
			t.Fatalf("unexpected rotations %+v", l.Rotations)
		}
		next := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyA), IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial, Marker: l.NextMarker}))
		if len(next.Rotations) != 8 {
			t.Fatalf("second page has %d entries, want 8", len(next.Rotations))
		}
	})
	t.Run("bad marker is InvalidMarkerException", func(t *testing.T) {
		_, err := e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyA), Marker: aws.String("garbage!")})
		wantCode(t, err, "InvalidMarkerException")
	})
	t.Run("limit 1001 is ValidationException", func(t *testing.T) {
		_, err := e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyA), Limit: aws.Int32(1001)})
		wantCode(t, err, "ValidationException")
	})
}

func TestListKeysAndAliases(t *testing.T) {
	e := start(t, kmsemu.Options{}, testFleet)
	t.Run("ListKeys pages through every key of the region", func(t *testing.T) {
		seen := map[string]bool{}
		p := kms.NewListKeysPaginator(e.kms, &kms.ListKeysInput{Limit: aws.Int32(5)})
		pages := 0
		for p.HasMorePages() {
			out := must[*kms.ListKeysOutput](t)(p.NextPage(e.ctx))
			pages++
			for _, k := range out.Keys {
				if seen[*k.KeyId] {
					t.Fatalf("key %s listed twice", *k.KeyId)
				}
				seen[*k.KeyId] = true
				if *k.KeyArn != arn("us-east-1", *k.KeyId) {
					t.Fatalf("KeyArn %s", *k.KeyArn)
				}
			}
		}
		if len(seen) != 12 || pages != 3 || !seen[mrk] {
			t.Fatalf("got %d keys in %d pages, want 12 in 3 with the replica", len(seen), pages)
		}
		eu := must[*kms.ListKeysOutput](t)(kmsClient(e.emu, "eu-west-1").ListKeys(e.ctx, &kms.ListKeysInput{}))
		if len(eu.Keys) != 1 || eu.Truncated {
			t.Fatalf("eu-west-1 keys %+v", eu.Keys)
		}
	})
	t.Run("ListAliases pages in name order and filters by key", func(t *testing.T) {
		var names []string
		p := kms.NewListAliasesPaginator(e.kms, &kms.ListAliasesInput{Limit: aws.Int32(2)})
		for p.HasMorePages() {
			for _, a := range must[*kms.ListAliasesOutput](t)(p.NextPage(e.ctx)).Aliases {
				names = append(names, *a.AliasName)
			}
		}
		want := []string{"alias/a", "alias/aws/s3", "alias/b", "alias/global-replica"}
		if len(names) != len(want) {
			t.Fatalf("aliases %v, want %v", names, want)
		}
		for i := range want {
			if names[i] != want[i] {
				t.Fatalf("aliases %v, want %v", names, want)
			}
		}
		one := must[*kms.ListAliasesOutput](t)(e.kms.ListAliases(e.ctx, &kms.ListAliasesInput{KeyId: aws.String(keyB)}))
		if len(one.Aliases) != 1 || *one.Aliases[0].TargetKeyId != keyB || *one.Aliases[0].AliasArn != "arn:aws:kms:us-east-1:"+acct+":alias/b" {
			t.Fatalf("aliases of key B %+v", one.Aliases)
		}
	})
	t.Run("bad marker is InvalidMarkerException", func(t *testing.T) {
		_, err := e.kms.ListKeys(e.ctx, &kms.ListKeysInput{Marker: aws.String("AAAA")})
		wantCode(t, err, "InvalidMarkerException")
		_, err = e.kms.ListAliases(e.ctx, &kms.ListAliasesInput{Limit: aws.Int32(101)})
		wantCode(t, err, "ValidationException")
	})
}

func TestAliases(t *testing.T) {
	e := start(t, kmsemu.Options{}, testFleet)
	cases := []struct {
		name, alias, target, code string
	}{
		{"new alias is created", "alias/new", keyB, ""},
		{"existing alias is AlreadyExistsException", "alias/a", keyB, "AlreadyExistsException"},
		{"reserved aws/ prefix is AccessDeniedException", "alias/aws/mine", keyB, "AccessDeniedException"},
		{"name without alias/ is ValidationException", "mine", keyB, "ValidationException"},
		{"unknown target is NotFoundException", "alias/x", "11111111-1111-4111-8111-111111111111", "NotFoundException"},
		{"target pending deletion is KMSInvalidStateException", "alias/y", keyDel, "KMSInvalidStateException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.kms.CreateAlias(e.ctx, &kms.CreateAliasInput{AliasName: aws.String(c.alias), TargetKeyId: aws.String(c.target)})
			wantCode(t, err, c.code)
		})
	}
	t.Run("new alias resolves, deleted alias does not", func(t *testing.T) {
		if id := *describe(t, e, "alias/new").KeyMetadata.KeyId; id != keyB {
			t.Fatalf("alias/new names %s", id)
		}
		must[*kms.DeleteAliasOutput](t)(e.kms.DeleteAlias(e.ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/new")}))
		_, err := e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/new")})
		wantCode(t, err, "NotFoundException")
		_, err = e.kms.DeleteAlias(e.ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/new")})
		wantCode(t, err, "NotFoundException")
	})
}

func TestTagsOnKeys(t *testing.T) {
	e := start(t, kmsemu.Options{}, testFleet)
	must[*kms.TagResourceOutput](t)(e.kms.TagResource(e.ctx, &kms.TagResourceInput{KeyId: aws.String(keyB), Tags: []types.Tag{{TagKey: aws.String("env"), TagValue: aws.String("prod")}, {TagKey: aws.String("team"), TagValue: aws.String("core")}}}))
	must[*kms.UntagResourceOutput](t)(e.kms.UntagResource(e.ctx, &kms.UntagResourceInput{KeyId: aws.String(keyB), TagKeys: []string{"kms-rotator"}}))
	t.Run("ListResourceTags pages through the tags in key order", func(t *testing.T) {
		var got []string
		p := kms.NewListResourceTagsPaginator(e.kms, &kms.ListResourceTagsInput{KeyId: aws.String(keyB), Limit: aws.Int32(1)})
		for p.HasMorePages() {
			for _, tg := range must[*kms.ListResourceTagsOutput](t)(p.NextPage(e.ctx)).Tags {
				got = append(got, *tg.TagKey+"="+*tg.TagValue)
			}
		}
		if len(got) != 2 || got[0] != "env=prod" || got[1] != "team=core" {
			t.Fatalf("tags %v", got)
		}
	})
	cases := []struct {
		name, id, key, code string
	}{
		{"aws: prefix is TagException", keyB, "aws:x", "TagException"},
		{"AWS managed key is UnsupportedOperationException", keyAWS, "x", "UnsupportedOperationException"},
		{"key pending deletion is KMSInvalidStateException", keyDel, "x", "KMSInvalidStateException"},
		{"alias is NotFoundException", "alias/b", "x", "NotFoundException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.kms.TagResource(e.ctx, &kms.TagResourceInput{KeyId: aws.String(c.id), Tags: []types.Tag{{TagKey: aws.String(c.key), TagValue: aws.String("v")}}})
			wantCode(t, err, c.code)
		})
	}
	t.Run("more than 50 tags is LimitExceededException", func(t *testing.T) {
		var tags []types.Tag
		for i := 0; i < 51; i++ {
			tags = append(tags, types.Tag{TagKey: aws.String(string(rune('A'+i%26)) + string(rune('a'+i/26))), TagValue: aws.String("v")})
		}
		_, err := e.kms.TagResource(e.ctx, &kms.TagResourceInput{KeyId: aws.String(keyA), Tags: tags})
		wantCode(t, err, "LimitExceededException")
	})
}

func TestCreateKey(t *testing.T) {
	e := start(t, kmsemu.Options{}, "")
	cases := []struct {
		name  string
		in    kms.CreateKeyInput
		code  string
		check func(*types.KeyMetadata) bool
	}{
		{"default is a customer managed symmetric key", kms.CreateKeyInput{Description: aws.String("d"), Tags: []types.Tag{{TagKey: aws.String("a"), TagValue: aws.String("b")}}}, "",
			func(m *types.KeyMetadata) bool {
				return m.KeySpec == types.KeySpecSymmetricDefault && m.KeyManager == types.KeyManagerTypeCustomer && *m.Description == "d" && m.KeyState == types.KeyStateEnabled
			}},
		{"HMAC key", kms.CreateKeyInput{KeySpec: types.KeySpecHmac384, KeyUsage: types.KeyUsageTypeGenerateVerifyMac}, "",
			func(m *types.KeyMetadata) bool { return m.MacAlgorithms[0] == types.MacAlgorithmSpecHmacSha384 }},
		{"imported key starts PendingImport", kms.CreateKeyInput{Origin: types.OriginTypeExternal}, "",
			func(m *types.KeyMetadata) bool { return m.KeyState == types.KeyStatePendingImport }},
		{"CloudHSM key names its store", kms.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm, CustomKeyStoreId: aws.String("cks-1")}, "",
			func(m *types.KeyMetadata) bool { return *m.CustomKeyStoreId == "cks-1" }},
		{"multi-Region key gets an mrk- ID", kms.CreateKeyInput{MultiRegion: aws.Bool(true)}, "",
			func(m *types.KeyMetadata) bool {
				return len(*m.KeyId) == 36 && (*m.KeyId)[:4] == "mrk-" && m.MultiRegionConfiguration.MultiRegionKeyType == types.MultiRegionKeyTypePrimary
			}},
		{"HMAC spec with default usage is ValidationException", kms.CreateKeyInput{KeySpec: types.KeySpecHmac256}, "ValidationException", nil},
		{"unknown spec is ValidationException", kms.CreateKeyInput{KeySpec: "AES_999"}, "ValidationException", nil},
		{"CloudHSM without a store is ValidationException", kms.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm}, "ValidationException", nil},
		{"multi-Region in a custom store is UnsupportedOperationException", kms.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm, CustomKeyStoreId: aws.String("cks-1"), MultiRegion: aws.Bool(true)}, "UnsupportedOperationException", nil},
		{"aws: tag is TagException", kms.CreateKeyInput{Tags: []types.Tag{{TagKey: aws.String("aws:x"), TagValue: aws.String("b")}}}, "TagException", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := e.kms.CreateKey(e.ctx, &c.in)
			wantCode(t, err, c.code)
			if c.check != nil && !c.check(out.KeyMetadata) {
				t.Fatalf("unexpected metadata %+v", out.KeyMetadata)
			}
		})
	}
}

func TestKeyStateChanges(t *testing.T) {
	e := start(t, opts, testFleet)
	state := func(id string) types.KeyState { return describe(t, e, id).KeyMetadata.KeyState }
	t.Run("disable and enable", func(t *testing.T) {
		must[*kms.DisableKeyOutput](t)(e.kms.DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: aws.String(keyB)}))
		if s := state(keyB); s != types.KeyStateDisabled {
			t.Fatalf("state %s", s)
		}
		must[*kms.EnableKeyOutput](t)(e.kms.EnableKey(e.ctx, &kms.EnableKeyInput{KeyId: aws.String(keyB)}))
		if s := state(keyB); s != types.KeyStateEnabled {
			t.Fatalf("state %s", s)
		}
	})
	t.Run("schedule deletion, cancel it and the key is Disabled", func(t *testing.T) {
		out := must[*kms.ScheduleKeyDeletionOutput](t)(e.kms.ScheduleKeyDeletion(e.ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyB), PendingWindowInDays: aws.Int32(7)}))
		if out.KeyState != types.KeyStatePendingDeletion || !out.DeletionDate.Equal(e.clock.Now().AddDate(0, 0, 7)) || aws.ToInt32(out.PendingWindowInDays) != 7 {
			t.Fatalf("unexpected output %+v", out)
		}
		_, err := e.kms.ScheduleKeyDeletion(e.ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyB)})
		wantCode(t, err, "KMSInvalidStateException")
		_, err = e.kms.EnableKey(e.ctx, &kms.EnableKeyInput{KeyId: aws.String(keyB)})
		wantCode(t, err, "KMSInvalidStateException")
		must[*kms.CancelKeyDeletionOutput](t)(e.kms.CancelKeyDeletion(e.ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(keyB)}))
		if s := state(keyB); s != types.KeyStateDisabled {
			t.Fatalf("state %s", s)
		}
		_, err = e.kms.CancelKeyDeletion(e.ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(keyB)})
		wantCode(t, err, "KMSInvalidStateException")
	})
	t.Run("window outside 7-30 is ValidationException", func(t *testing.T) {
		_, err := e.kms.ScheduleKeyDeletion(e.ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyA), PendingWindowInDays: aws.Int32(6)})
		wantCode(t, err, "ValidationException")
	})
	t.Run("AWS managed key cannot be disabled", func(t *testing.T) {
		_, err := e.kms.DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: aws.String(keyAWS)})
		wantCode(t, err, "UnsupportedOperationException")
	})
	t.Run("scheduled key is deleted after its window", func(t *testing.T) {
		must[*kms.ScheduleKeyDeletionOutput](t)(e.kms.ScheduleKeyDeletion(e.ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyHMAC), PendingWindowInDays: aws.Int32(7)}))
		e.clock.Advance(8 * 24 * time.Hour)
		keys := must[*kms.ListKeysOutput](t)(e.kms.ListKeys(e.ctx, &kms.ListKeysInput{}))
		for _, k := range keys.Keys {
			if *k.KeyId == keyHMAC || *k.KeyId == keyDel {
				t.Fatalf("deleted key %s still listed", *k.KeyId)
			}
		}
	})
}

func TestDeleteMultiRegionPrimary(t *testing.T) {
	e := start(t, kmsemu.Options{}, testFleet)
	eu := kmsClient(e.emu, "eu-west-1")
	out := must[*kms.ScheduleKeyDeletionOutput](t)(eu.ScheduleKeyDeletion(e.ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(mrk), PendingWindowInDays: aws.Int32(10)}))
	if out.KeyState != types.KeyStatePendingReplicaDeletion || out.DeletionDate != nil {
		t.Fatalf("primary with a replica: %+v", out)
	}
	p := must[*kms.DescribeKeyOutput](t)(eu.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(mrk)})).KeyMetadata
	if aws.ToInt32(p.PendingDeletionWindowInDays) != 10 {
		t.Fatalf("PendingDeletionWindowInDays %v", p.PendingDeletionWindowInDays)
	}
	must[*kms.ScheduleKeyDeletionOutput](t)(e.kms.ScheduleKeyDeletion(e.ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(mrk), PendingWindowInDays: aws.Int32(7)}))
	replicaGone := e.clock.Now().AddDate(0, 0, 7)
	e.clock.Advance(8 * 24 * time.Hour)
	p = must[*kms.DescribeKeyOutput](t)(eu.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(mrk)})).KeyMetadata
	if p.KeyState != types.KeyStatePendingDeletion || !p.DeletionDate.Equal(replicaGone.AddDate(0, 0, 10)) || len(p.MultiRegionConfiguration.ReplicaKeys) != 0 {
		t.Fatalf("primary after its replica was deleted: %+v", p)
	}
	_, err := e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(mrk)})
	wantCode(t, err, "NotFoundException")
}

func TestReplicateKey(t *testing.T) {
	e := start(t, kmsemu.Options{}, testFleet)
	eu := kmsClient(e.emu, "eu-west-1")
	out := must[*kms.ReplicateKeyOutput](t)(eu.ReplicateKey(e.ctx, &kms.ReplicateKeyInput{KeyId: aws.String(mrk), ReplicaRegion: aws.String("ap-southeast-2"),
		Tags: []types.Tag{{TagKey: aws.String("r"), TagValue: aws.String("1")}}}))
	md := out.ReplicaKeyMetadata
	if *md.Arn != arn("ap-southeast-2", mrk) || md.MultiRegionConfiguration.MultiRegionKeyType != types.MultiRegionKeyTypeReplica || len(out.ReplicaTags) != 1 {
		t.Fatalf("unexpected replica %+v", md)
	}
	p := must[*kms.DescribeKeyOutput](t)(eu.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(mrk)}))
	if n := len(p.KeyMetadata.MultiRegionConfiguration.ReplicaKeys); n != 2 {
		t.Fatalf("primary lists %d replicas, want 2", n)
	}
	ap := kmsClient(e.emu, "ap-southeast-2")
	must[*kms.DescribeKeyOutput](t)(ap.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(mrk)}))
	cases := []struct {
		name, id, region, code string
		client                 *kms.Client
	}{
		{"existing replica region is AlreadyExistsException", mrk, "us-east-1", "AlreadyExistsException", eu},
		{"own region is ValidationException", mrk, "eu-west-1", "ValidationException", eu},
		{"single-Region key is UnsupportedOperationException", keyA, "eu-west-1", "UnsupportedOperationException", e.kms},
		{"replica is UnsupportedOperationException", mrk, "eu-central-1", "UnsupportedOperationException", e.kms},
		{"bad region is ValidationException", mrk, "moon-1", "ValidationException", eu},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.client.ReplicateKey(e.ctx, &kms.ReplicateKeyInput{KeyId: aws.String(c.id), ReplicaRegion: aws.String(c.region)})
			wantCode(t, err, c.code)
		})
	}
}

func TestEncryptDecrypt(t *testing.T) {
	e := start(t, kmsemu.Options{}, testFleet)
	ec := map[string]string{"purpose": "test"}
	enc := must[*kms.EncryptOutput](t)(e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String("alias/a"), Plaintext: []byte("secret"), EncryptionContext: ec}))
	if *enc.KeyId != arn("us-east-1", keyA) {
		t.Fatalf("KeyId %s", *enc.KeyId)
	}
	before := *describe(t, e, keyA).KeyMetadata.CurrentKeyMaterialId
	must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyA)}))
	t.Run("data encrypted before a rotation decrypts after it", func(t *testing.T) {
		dec := must[*kms.DecryptOutput](t)(e.kms.Decrypt(e.ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec}))
		if string(dec.Plaintext) != "secret" || *dec.KeyMaterialId != before || *dec.KeyId != arn("us-east-1", keyA) {
			t.Fatalf("decrypted %q with material %s (want %s)", dec.Plaintext, *dec.KeyMaterialId, before)
		}
	})
	t.Run("new data uses the new key material", func(t *testing.T) {
		enc2 := must[*kms.EncryptOutput](t)(e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(keyA), Plaintext: []byte("x")}))
		dec := must[*kms.DecryptOutput](t)(e.kms.Decrypt(e.ctx, &kms.DecryptInput{CiphertextBlob: enc2.CiphertextBlob, KeyId: aws.String("alias/a")}))
		if *dec.KeyMaterialId == before {
			t.Fatal("encrypted with the old key material after the rotation")
		}
	})
	t.Run("multi-Region ciphertext decrypts in the replica region", func(t *testing.T) {
		eu := kmsClient(e.emu, "eu-west-1")
		c := must[*kms.EncryptOutput](t)(eu.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(mrk), Plaintext: []byte("mr")}))
		dec := must[*kms.DecryptOutput](t)(e.kms.Decrypt(e.ctx, &kms.DecryptInput{CiphertextBlob: c.CiphertextBlob}))
		if !bytes.Equal(dec.Plaintext, []byte("mr")) {
			t.Fatalf("plaintext %q", dec.Plaintext)
		}
	})
	tampered := append([]byte(nil), enc.CiphertextBlob...)
	tampered[len(tampered)-1] ^= 1
	cases := []struct {
		name string
		in   kms.DecryptInput
		code string
	}{
		{"wrong encryption context is InvalidCiphertextException", kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}, "InvalidCiphertextException"},
		{"altered ciphertext is InvalidCiphertextException", kms.DecryptInput{CiphertextBlob: tampered, EncryptionContext: ec}, "InvalidCiphertextException"},
		{"garbage is InvalidCiphertextException", kms.DecryptInput{CiphertextBlob: []byte("garbage")}, "InvalidCiphertextException"},
		{"another key is IncorrectKeyException", kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, KeyId: aws.String(keyB)}, "IncorrectKeyException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.kms.Decrypt(e.ctx, &c.in)
			wantCode(t, err, c.code)
		})
	}
	encCases := []struct {
		name, id string
		plain    []byte
		code     string
	}{
		{"disabled key is DisabledException", keyDis, []byte("x"), "DisabledException"},
		{"HMAC key is InvalidKeyUsageException", keyHMAC, []byte("x"), "InvalidKeyUsageException"},
		{"oversized plaintext is ValidationException", keyA, make([]byte, 4097), "ValidationException"},
	}
	for _, c := range encCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(c.id), Plaintext: c.plain})
			wantCode(t, err, c.code)
		})
	}
}
