package rotator

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/lambda/hub"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// activeFindings reads moto's findings: Id → record state.
func activeFindings(t *testing.T, c *hub.Client) map[string]string {
	t.Helper()
	out := map[string]string{}
	next := ""
	for {
		page, token, err := c.GetFindings(context.Background(), hub.Filters{}, next)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range page {
			if _, dup := out[f.ID]; dup {
				t.Errorf("finding %s twice", f.ID)
			}
			out[f.ID] = f.RecordState
		}
		if token == "" {
			return out
		}
		next = token
	}
}

// A key that needs action is one finding, updated (not repeated) while the
// condition holds and archived once it clears.
func TestSecurityHubFindingsFollowTheKeys(t *testing.T) {
	fleet := `[
	 {"keyId":"aaaa0000-0000-4000-8000-0000000000a1","alias":"alias/refused","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
	 {"keyId":"aaaa0000-0000-4000-8000-0000000000a2","alias":"alias/exhausted","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":` + onDemandRotations(25) + `},
	 {"keyId":"aaaa0000-0000-4000-8000-0000000000a3","alias":"alias/fine","createdDaysAgo":10,"tags":{"kms-rotator":"enabled"}}]`
	cfg := fastConfig()
	cfg.SecurityHub = true
	h := newHarness(t, kmsemu.Options{}, fleet, cfg)
	// moto's server serves Security Hub too.
	evidenceS3(t)
	client := hub.New(aws.Config{Region: testRegion, BaseEndpoint: aws.String(motoS3.srv.URL),
		Credentials: h.emu.Config(testRegion).Credentials})
	h.engine.SetSecurityHub(func(region string) SecurityHubAPI {
		if region != testRegion {
			t.Errorf("Security Hub client asked for %s, the run works in %s", region, testRegion)
		}
		return client
	}, nil)
	refusing := &hookKMS{KMSAPI: h.kms}
	refusing.rotate = func(context.Context, *kms.RotateKeyOnDemandInput, ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
		return nil, &kmstypes.KMSInvalidStateException{Message: aws.String("injected")}
	}
	h.engine.kms = refusing
	arn := func(id string) string { return keyARN("aws", testRegion, testAccount, id) }
	overdue, exhausted := findingID(condOverdue, arn("aaaa0000-0000-4000-8000-0000000000a1")), findingID(condBudget, arn("aaaa0000-0000-4000-8000-0000000000a2"))
	for range 2 { // the same conditions twice: one finding each
		h.run(t, request.Request{Mode: request.ModeScheduled})
		got := activeFindings(t, client)
		if len(got) != 2 || got[overdue] != recordActive || got[exhausted] != recordActive {
			t.Fatalf("findings %v, want %s and %s active, nothing else", got, overdue, exhausted)
		}
	}
	// The refused key rotates: its finding is archived, the other stays.
	h.engine.kms = h.kms
	h.run(t, request.Request{Mode: request.ModeScheduled})
	got := activeFindings(t, client)
	if len(got) != 2 || got[overdue] != recordArchived || got[exhausted] != recordActive {
		t.Fatalf("after the rotation: findings %v, want %s archived and %s active", got, overdue, exhausted)
	}
}
