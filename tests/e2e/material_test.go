package e2e

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// Key material, from outside: imported keys rotate once new
// material is staged and are skipped for their material otherwise; a
// rotation's new material shows in CurrentKeyMaterialId; an incident waits
// for it (AWS clears the status about a minute before the
// material changes, the emulator's -material-delay); sweeps never mistake
// that gap for a failure or a reason to rotate again; and idle keys are
// spared when ROTATOR_SKIP_IDLE asks for it.

// importedFleet: imported keys in every state a sweep and an incident meet,
// and a key with KMS's own material as a control.
var importedFleet = fmt.Sprintf(`[
 {"keyId":"e0000000-0000-4000-8000-000000000001","alias":"alias/byok-staged","origin":"EXTERNAL","createdDaysAgo":200,
  "stagedMaterial":true,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"e0000000-0000-4000-8000-000000000002","alias":"alias/byok-unstaged","origin":"EXTERNAL","createdDaysAgo":200,
  "materialExpiresInDays":30,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"e0000000-0000-4000-8000-000000000003","alias":"alias/byok-staged-fresh","origin":"EXTERNAL","createdDaysAgo":10,
  "stagedMaterial":true,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"e0000000-0000-4000-8000-000000000004","alias":"alias/byok-staged-reserved","origin":"EXTERNAL","createdDaysAgo":2000,
  "stagedMaterial":true,"rotations":%s,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"mrk-e0000000000040008000000000000005","alias":"alias/byok-global","region":"us-east-1","multiRegionKeyType":"PRIMARY",
  "origin":"EXTERNAL","createdDaysAgo":200,"stagedMaterial":true,"tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/byok-global","region":"eu-west-1","multiRegionKeyType":"REPLICA","primaryAlias":"alias/byok-global",
  "pendingReplicaImport":true,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"e0000000-0000-4000-8000-000000000006","alias":"alias/byok-pending-import","origin":"EXTERNAL","importedMaterial":false,
  "createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"e0000000-0000-4000-8000-000000000007","alias":"alias/kms-due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}}]`,
	onDemandJSON(23, 100))

// importParams wraps material for the emulator with RSA_2048 keys: it makes
// one wrapping key pair per key spec, and 2048 bits is the quickest to
// generate.
var importParams = kms.GetParametersForImportInput{WrappingKeySpec: types.WrappingKeySpecRsa2048, WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256}

// newMaterial returns 256 bits of new key material, as a partner's HSM
// would export it.
func newMaterial(t *testing.T) []byte {
	t.Helper()
	m := make([]byte, 32)
	if _, err := rand.Read(m); err != nil {
		t.Fatal(err)
	}
	return m
}

// importMaterial imports m into keyID through the real SDK
// (GetParametersForImport, wrap, ImportKeyMaterial) and returns its
// KeyMaterialId.
func importMaterial(t *testing.T, c *kms.Client, keyID string, m []byte, typ types.ImportType) string {
	t.Helper()
	id, err := emutest.ImportKeyMaterial(t.Context(), c, keyID, m, importParams, kms.ImportKeyMaterialInput{ImportType: typ})
	if err != nil {
		t.Fatalf("import key material (%s) into %s: %v", typ, keyID, err)
	}
	return id
}

// currentMaterial returns DescribeKey's CurrentKeyMaterialId.
func currentMaterial(t *testing.T, c *kms.Client, keyID string) string {
	t.Helper()
	d, err := c.DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatalf("describe %s: %v", keyID, err)
	}
	return aws.ToString(d.KeyMetadata.CurrentKeyMaterialId)
}

// keyARNOf returns the ARN of the key an alias or ID names.
func keyARNOf(t *testing.T, c *kms.Client, name string) string {
	t.Helper()
	d, err := c.DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: aws.String(name)})
	if err != nil {
		t.Fatalf("describe %s: %v", name, err)
	}
	return aws.ToString(d.KeyMetadata.Arn)
}

// noWait adds "wait": false to an incident payload: the tests that use it
// are about something else than the wait for completion, and with a long
// -rotation-delay the wait would last until the deadline.
func noWait(t *testing.T, payload []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	m["wait"] = false
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// str returns an entry's member as a string ("" when absent or not one).
func str(e map[string]any, f string) string {
	s, _ := e[f].(string)
	return s
}

// entryTime parses an entry's RFC 3339 member; ok is false when it is
// absent, null or malformed.
func entryTime(e map[string]any, f string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, str(e, f))
	return t, err == nil
}

// invokeChecked invokes payload, checks the report's schema, the emulator's
// rotations and key materials against it, and returns the report and its
// entries by name.
func invokeChecked(t *testing.T, env *harness.Env, fn *harness.Function, payload []byte) (*oracle.Report, *harness.Invocation, map[string]map[string]any) {
	t.Helper()
	before := snapshot(t, env.KMS)
	r, inv, err := fn.InvokeReport(t.Context(), payload)
	if err != nil {
		t.Fatalf("invoke %.80s: %v", payload, err)
	}
	after := snapshot(t, env.KMS)
	report(t, "report schema", oracle.CheckReport(inv.Raw))
	report(t, "emulator state", oracle.CheckRotations(before, after, r))
	report(t, "key material", oracle.CheckMaterial(before, after, r))
	if t.Failed() {
		var b strings.Builder
		_ = harness.WriteTable(&b, r)
		t.Logf("report:\n%s", b.String())
	}
	return r, inv, rawEntries(t, inv.Raw)
}

// wantOutcomes asserts each named entry's "outcome" or "outcome/reason".
func wantOutcomes(t *testing.T, r *oracle.Report, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if got := outcomeOf(r, name); got != w {
			t.Errorf("%s: %q, want %q", name, got, w)
		}
	}
}

// TestImportedKeysRotateOnlyToStagedMaterial runs each mode over imported
// keys: with new material staged (PENDING_ROTATION) a key is decided like
// any other — due, not due, within the reserve, named by an incident — and
// a rotation makes the staged material current; without staged material it
// is material-not-staged; a multi-Region key whose replica lacks the staged
// material is material-pending-replica-import; an imported key without any
// material is not enabled.
func TestImportedKeysRotateOnlyToStagedMaterial(t *testing.T) {
	const incident = `{"mode":"incident","reason":"INC-1201 partner key exposed","keys":["alias/byok-staged","alias/byok-unstaged",
		"alias/byok-staged-fresh","alias/byok-staged-reserved","alias/byok-global","alias/kms-due"]}`
	tests := []struct {
		name    string
		payload string
		want    map[string]string
	}{
		{name: "scheduled sweep rotates the due staged key to its staged material", payload: `{"mode":"scheduled"}`, want: map[string]string{
			"alias/byok-staged": "rotated", "alias/byok-unstaged": "skipped/material-not-staged",
			"alias/byok-staged-fresh": "skipped/not-due", "alias/byok-staged-reserved": "skipped/budget-reserved",
			"alias/byok-global": "skipped/material-pending-replica-import", "alias/byok-pending-import": "skipped/key-not-enabled",
			"alias/kms-due": "rotated"}},
		{name: "plan would rotate the due staged key and changes no material", payload: `{"mode":"plan"}`, want: map[string]string{
			"alias/byok-staged": "would-rotate", "alias/byok-unstaged": "skipped/material-not-staged",
			"alias/byok-staged-fresh": "skipped/not-due", "alias/byok-staged-reserved": "skipped/budget-reserved",
			"alias/byok-global": "skipped/material-pending-replica-import", "alias/kms-due": "would-rotate"}},
		{name: "report inventories the materials", payload: `{"mode":"report","usage":true}`, want: map[string]string{
			"alias/byok-staged": "would-rotate", "alias/byok-unstaged": "skipped/material-not-staged",
			"alias/byok-global": "skipped/material-pending-replica-import"}},
		{name: "incident rotates every staged key, due or not, and waits for the new material", payload: incident, want: map[string]string{
			"alias/byok-staged": "rotated", "alias/byok-unstaged": "skipped/material-not-staged",
			"alias/byok-staged-fresh": "rotated", "alias/byok-staged-reserved": "rotated",
			"alias/byok-global": "skipped/material-pending-replica-import", "alias/kms-due": "rotated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{FleetJSON: importedFleet, Args: completeAtOnce}})
			c := env.KMS.KMS("")
			before := snapshot(t, env.KMS)
			arn := func(alias string) string { return keyARNOf(t, c, alias) }
			r, _, entries := invokeChecked(t, env, env.Function, []byte(tt.payload))
			wantOutcomes(t, r, tt.want)
			after := snapshot(t, env.KMS)

			for alias, want := range tt.want {
				b, a, e := before[arn(alias)], after[arn(alias)], entries[alias]
				switch {
				case want == "rotated":
					if str(e, "keyMaterialIdBefore") != b.Material {
						t.Errorf("%s: keyMaterialIdBefore %q, the key's material before was %q", alias, str(e, "keyMaterialIdBefore"), b.Material)
					}
					if a.Material == b.Material {
						t.Errorf("%s: rotated, yet CurrentKeyMaterialId is still %s", alias, a.Material)
					}
					if b.Staged != "" && a.Material != b.Staged {
						t.Errorf("%s: CurrentKeyMaterialId %s after the rotation, want the staged material %s", alias, a.Material, b.Staged)
					}
				case a.Material != b.Material:
					t.Errorf("%s (%s): CurrentKeyMaterialId changed from %s to %s", alias, want, b.Material, a.Material)
				}
				if strings.HasPrefix(alias, "alias/byok-") && alias != "alias/byok-pending-import" && want != "rotated" && str(e, "keyMaterialId") != b.Material {
					t.Errorf("%s (%s): keyMaterialId %q, want the current material %s", alias, want, str(e, "keyMaterialId"), b.Material)
				}
			}
			// Staged material waits in PENDING_ROTATION (or for the
			// replicas); the entry names it.
			for _, alias := range []string{"alias/byok-staged-fresh", "alias/byok-staged-reserved", "alias/byok-global"} {
				if e := entries[alias]; tt.want[alias] != "rotated" && tt.want[alias] != "" && str(e, "stagedKeyMaterialId") != before[arn(alias)].Staged {
					t.Errorf("%s: stagedKeyMaterialId %q, want the staged material %s", alias, str(e, "stagedKeyMaterialId"), before[arn(alias)].Staged)
				}
			}
			if !before[arn("alias/byok-global")].PendingReplicas {
				t.Error("alias/byok-global: the emulator does not show its staged material waiting for the replica; the fleet tests nothing")
			}
			// The unstaged key's material expires in 30 days.
			if exp, ok := entryTime(entries["alias/byok-unstaged"], "materialExpiresAt"); !ok || time.Until(exp) < 29*24*time.Hour || time.Until(exp) > 30*24*time.Hour {
				t.Errorf("alias/byok-unstaged: materialExpiresAt %#v, want 30 days from now", entries["alias/byok-unstaged"]["materialExpiresAt"])
			}
			if strings.HasPrefix(tt.payload, `{"mode":"incident"`) {
				for alias, want := range tt.want {
					if want != "rotated" {
						continue
					}
					e := entries[alias]
					if str(e, "completion") != "complete" || str(e, "keyMaterialId") != after[arn(alias)].Material {
						t.Errorf("%s: completion %#v keyMaterialId %#v, want complete and the new material %s", alias, e["completion"], e["keyMaterialId"], after[arn(alias)].Material)
					}
					if _, ok := entryTime(e, "completedAt"); !ok {
						t.Errorf("%s: completedAt %#v, want the time the new material was seen", alias, e["completedAt"])
					}
				}
			}
			if tt.payload == `{"mode":"report","usage":true}` {
				for alias, e := range entries {
					if strings.HasPrefix(alias, "alias/") && e["onDemandUsed"] != nil {
						if _, has := e["lastUsedAt"]; !has {
							t.Errorf("%s: report entry without lastUsedAt", alias)
						}
					}
				}
			}
		})
	}
}

// TestMaterialStagedThroughTheSDKIsRotatedTo stages material the way the
// runbook does — CreateKey with Origin EXTERNAL, GetParametersForImport,
// ImportKeyMaterial, then new material with ImportType NEW_KEY_MATERIAL —
// for a single-Region key and a multi-Region key with a replica: the
// incident rotates the first to exactly that material; the second waits
// (material-pending-replica-import) until the replica has imported the new
// material too, and then the whole set moves to it.
func TestMaterialStagedThroughTheSDKIsRotatedTo(t *testing.T) {
	env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{Args: []string{"-rotation-delay=0", "-replica-delay=0", "-quiet"}}})
	primary, replicaClient := env.KMS.KMS("us-east-1"), env.KMS.KMS("eu-west-1")
	optIn := []types.Tag{{TagKey: aws.String("kms-rotator"), TagValue: aws.String("enabled")}}
	create := func(alias string, multiRegion bool) string {
		out, err := primary.CreateKey(t.Context(), &kms.CreateKeyInput{Origin: types.OriginTypeExternal, MultiRegion: aws.Bool(multiRegion), Tags: optIn,
			Description: aws.String("e2e: " + alias)})
		if err != nil {
			t.Fatalf("create %s: %v", alias, err)
		}
		id := aws.ToString(out.KeyMetadata.KeyId)
		if _, err := primary.CreateAlias(t.Context(), &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(id)}); err != nil {
			t.Fatalf("alias %s: %v", alias, err)
		}
		return id
	}

	single := create("alias/partner-single", false)
	first := importMaterial(t, primary, single, newMaterial(t), types.ImportTypeNewKeyMaterial)
	staged := importMaterial(t, primary, single, newMaterial(t), types.ImportTypeNewKeyMaterial)

	global := create("alias/partner-multi", true)
	m0, m1 := newMaterial(t), newMaterial(t)
	globalFirst := importMaterial(t, primary, global, m0, types.ImportTypeNewKeyMaterial)
	if _, err := primary.ReplicateKey(t.Context(), &kms.ReplicateKeyInput{KeyId: aws.String(global), ReplicaRegion: aws.String("eu-west-1")}); err != nil {
		t.Fatalf("replicate: %v", err)
	}
	importMaterial(t, replicaClient, global, m0, types.ImportTypeExistingKeyMaterial)
	globalStaged := importMaterial(t, primary, global, m1, types.ImportTypeNewKeyMaterial)

	incident := []byte(`{"mode":"incident","reason":"INC-1202 partner material rotated","keys":["alias/partner-single","alias/partner-multi"]}`)
	r, _, entries := invokeChecked(t, env, env.Function, incident)
	wantOutcomes(t, r, map[string]string{"alias/partner-single": "rotated", "alias/partner-multi": "skipped/material-pending-replica-import"})
	if got := currentMaterial(t, primary, single); got != staged || got == first {
		t.Errorf("alias/partner-single: CurrentKeyMaterialId %s after the incident, want the staged material %s (was %s)", got, staged, first)
	}
	if e := entries["alias/partner-single"]; str(e, "keyMaterialIdBefore") != first || str(e, "keyMaterialId") != staged || str(e, "completion") != "complete" {
		t.Errorf("alias/partner-single: keyMaterialIdBefore %#v keyMaterialId %#v completion %#v, want %s, %s, complete",
			e["keyMaterialIdBefore"], e["keyMaterialId"], e["completion"], first, staged)
	}
	if e := entries["alias/partner-multi"]; str(e, "keyMaterialId") != globalFirst {
		t.Errorf("alias/partner-multi: keyMaterialId %#v, want its current material %s", e["keyMaterialId"], globalFirst)
	}
	if got := currentMaterial(t, primary, global); got != globalFirst {
		t.Errorf("alias/partner-multi: CurrentKeyMaterialId %s while the replica lacks the staged material, want %s", got, globalFirst)
	}

	// The replica imports the new material: KMS can rotate the set now.
	importMaterial(t, replicaClient, global, m1, types.ImportTypeExistingKeyMaterial)
	r, _, entries = invokeChecked(t, env, env.Function, []byte(`{"mode":"incident","reason":"INC-1202 replica has the material","keys":["alias/partner-multi"]}`))
	wantOutcomes(t, r, map[string]string{"alias/partner-multi": "rotated"})
	for region, c := range map[string]*kms.Client{"us-east-1": primary, "eu-west-1": replicaClient} {
		if got := currentMaterial(t, c, global); got != globalStaged {
			t.Errorf("alias/partner-multi in %s: CurrentKeyMaterialId %s, want the staged material %s", region, got, globalStaged)
		}
	}
	if e := entries["alias/partner-multi"]; str(e, "keyMaterialIdBefore") != globalFirst || str(e, "keyMaterialId") != globalStaged {
		t.Errorf("alias/partner-multi: keyMaterialIdBefore %#v keyMaterialId %#v, want %s then %s", e["keyMaterialIdBefore"], e["keyMaterialId"], globalFirst, globalStaged)
	}
}

// splitFleet: two due keys, one with KMS's material and one imported with
// new material staged.
const splitFleet = `[
 {"keyId":"f0000000-0000-4000-8000-000000000001","alias":"alias/kms-due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"f0000000-0000-4000-8000-000000000002","alias":"alias/byok-due","origin":"EXTERNAL","createdDaysAgo":200,"stagedMaterial":true,
  "tags":{"kms-rotator":"enabled"}}]`

// splitKeys are splitFleet's keys.
var splitKeys = []string{"alias/kms-due", "alias/byok-due"}

// newestOnDemand returns the date of the key's newest ON_DEMAND rotation
// (keyID may be an alias):
// the end of the rotation's first phase (the status cleared).
func newestOnDemand(t *testing.T, c *kms.Client, keyID string) time.Time {
	t.Helper()
	var newest time.Time
	// ListKeyRotations takes a key ID or ARN, not an alias.
	p := kms.NewListKeyRotationsPaginator(c, &kms.ListKeyRotationsInput{KeyId: aws.String(keyARNOf(t, c, keyID))})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("list rotations of %s: %v", keyID, err)
		}
		for _, r := range page.Rotations {
			if r.RotationType == types.RotationTypeOnDemand && r.RotationDate.After(newest) {
				newest = *r.RotationDate
			}
		}
	}
	if newest.IsZero() {
		t.Fatalf("%s: no on-demand rotation listed", keyID)
	}
	return newest
}

// waitUntil polls cond every 50 ms until it holds; the test's deadline
// bounds it.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatalf("never: %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// statusCleared reports whether no on-demand rotation is in progress for
// any of the keys (IDs, ARNs or aliases).
func statusCleared(t *testing.T, c *kms.Client, keys ...string) bool {
	t.Helper()
	for _, k := range keys {
		st, err := c.GetKeyRotationStatus(t.Context(), &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyARNOf(t, c, k))})
		if err != nil {
			t.Fatalf("rotation status of %s: %v", k, err)
		}
		if st.OnDemandRotationStartDate != nil {
			return false
		}
	}
	return true
}

// TestConfirmationWaitsForTheNewMaterial runs the function against KMS's
// two-phase completion, scaled down: the rotation is in progress for 1 s,
// then the status clears while the old material stays current for 3 s more
// (kmslocal -rotation-delay 1s -material-delay 3s; AWS takes about 10 s and
// a minute). An incident confirms a rotation only by the new material; a
// sweep in the gap never takes "status cleared, material unchanged" for a
// failure or for a reason to rotate again; "wait": false returns at once.
func TestConfirmationWaitsForTheNewMaterial(t *testing.T) {
	const rotationDelay, materialDelay = time.Second, 3 * time.Second
	emuArgs := []string{"-rotation-delay=" + rotationDelay.String(), "-material-delay=" + materialDelay.String(), "-quiet"}
	start := func(t *testing.T, fnEnv map[string]string) (*harness.Env, *kms.Client, map[string]string) {
		env := harness.StartTB(t, harness.Options{
			KMSLocal: harness.KMSLocalOptions{FleetJSON: splitFleet, Args: emuArgs},
			Function: harness.FunctionOptions{Env: fnEnv},
		})
		c := env.KMS.KMS("")
		materials := map[string]string{}
		for _, k := range splitKeys {
			materials[k] = currentMaterial(t, c, k)
		}
		return env, c, materials
	}
	incident := []byte(`{"mode":"incident","reason":"INC-1401 confirm by the material","keys":["alias/kms-due","alias/byok-due"]}`)
	// What a run may say of a key rotated moments ago: not due (the
	// rotation is listed), its rotation in progress, or — for the imported
	// key, whose staged material the rotation took — nothing staged.
	gapOutcomes := map[string][]string{
		"alias/kms-due":  {"skipped/not-due", "skipped/rotation-in-progress"},
		"alias/byok-due": {"skipped/not-due", "skipped/rotation-in-progress", "skipped/material-not-staged"},
	}

	t.Run("an incident waits for the new material before it reports completion", func(t *testing.T) {
		env, c, old := start(t, nil)
		staged := snapshot(t, env.KMS)[keyARNOf(t, c, "alias/byok-due")].Staged
		r, inv, entries := invokeChecked(t, env, env.Function, incident)
		wantOutcomes(t, r, map[string]string{"alias/kms-due": "rotated", "alias/byok-due": "rotated"})
		for _, k := range splitKeys {
			e := entries[k]
			now := currentMaterial(t, c, k)
			if now == old[k] {
				t.Errorf("%s: CurrentKeyMaterialId unchanged after the incident returned complete", k)
			}
			if str(e, "completion") != "complete" || str(e, "keyMaterialId") != now || str(e, "keyMaterialIdBefore") != old[k] {
				t.Errorf("%s: completion %#v keyMaterialId %#v keyMaterialIdBefore %#v; want complete, the new CurrentKeyMaterialId %s, the old %s",
					k, e["completion"], e["keyMaterialId"], e["keyMaterialIdBefore"], now, old[k])
			}
			// The status cleared at the rotation's date; the material
			// changed materialDelay later. A confirmation by the status
			// alone would come before that.
			cleared := newestOnDemand(t, c, k)
			if done, ok := entryTime(e, "completedAt"); !ok || done.Before(cleared.Add(materialDelay-100*time.Millisecond)) {
				t.Errorf("%s: completedAt %#v, want no earlier than the material changed (%s + %v)", k, e["completedAt"], cleared.Format(time.RFC3339Nano), materialDelay)
			}
		}
		if got := currentMaterial(t, c, "alias/byok-due"); got != staged {
			t.Errorf("alias/byok-due: CurrentKeyMaterialId %s, want the staged material %s", got, staged)
		}
		if inv.Duration < rotationDelay+materialDelay {
			t.Errorf("the incident returned after %v, before the material could have changed (%v)", inv.Duration, rotationDelay+materialDelay)
		}
		// A sweep right after: both keys were just rotated.
		sweep, _, _ := invokeChecked(t, env, env.Function, []byte(`{"mode":"scheduled"}`))
		wantOutcomes(t, sweep, map[string]string{"alias/kms-due": "skipped/not-due", "alias/byok-due": "skipped/material-not-staged"})
	})

	t.Run("a sweep in the gap between status and material neither fails nor rotates again", func(t *testing.T) {
		env, c, old := start(t, nil)
		initial := snapshot(t, env.KMS)
		first, inv, entries := invokeChecked(t, env, env.Function, []byte(`{"mode":"scheduled"}`))
		wantOutcomes(t, first, map[string]string{"alias/kms-due": "rotated", "alias/byok-due": "rotated"})
		if inv.Duration > rotationDelay+materialDelay {
			t.Errorf("the sweep took %v: sweeps do not wait for completion", inv.Duration)
		}
		for _, k := range splitKeys {
			if _, has := entries[k]["completion"]; has {
				t.Errorf("%s: completion %#v in a sweep (sweeps do not wait)", k, entries[k]["completion"])
			}
		}
		waitUntil(t, "the rotations' status cleared", func() bool { return statusCleared(t, c, splitKeys...) })
		for _, k := range splitKeys {
			if currentMaterial(t, c, k) != old[k] {
				t.Fatalf("%s: the material changed as the status cleared; the gap this test needs is not there", k)
			}
		}
		var reports []*oracle.Report
		for _, payload := range []string{`{"mode":"scheduled"}`, `{"mode":"plan"}`, `{"mode":"report"}`} {
			r, _, _ := invokeChecked(t, env, env.Function, []byte(payload))
			reports = append(reports, r)
			// The imported key's staged material went into the rotation:
			// nothing is staged any more.
			for _, k := range splitKeys {
				if got := outcomeOf(r, k); !contains(gapOutcomes[k], got) {
					t.Errorf("%s in the gap: %s %q, want one of %q", payload, k, got, gapOutcomes[k])
				}
			}
			if r.Summary.Failed != 0 {
				t.Errorf("%s in the gap: %d failed", payload, r.Summary.Failed)
			}
		}
		for _, k := range splitKeys {
			if currentMaterial(t, c, k) != old[k] {
				t.Errorf("%s: the material changed before the sweeps in the gap ended: they may have run after it (slow machine?)", k)
			}
		}
		if n := rotateCalls(t, env.KMS); n != 2 {
			t.Errorf("%d RotateKeyOnDemand calls, want 2 (one per key)", n)
		}
		waitUntil(t, "the new material is current", func() bool {
			return currentMaterial(t, c, "alias/kms-due") != old["alias/kms-due"] && currentMaterial(t, c, "alias/byok-due") != old["alias/byok-due"]
		})
		last, _, lastEntries := invokeChecked(t, env, env.Function, []byte(`{"mode":"scheduled"}`))
		wantOutcomes(t, last, map[string]string{"alias/kms-due": "skipped/not-due", "alias/byok-due": "skipped/material-not-staged"})
		if got, want := str(lastEntries["alias/byok-due"], "keyMaterialId"), currentMaterial(t, c, "alias/byok-due"); got != want {
			t.Errorf("alias/byok-due: keyMaterialId %q once the material changed, want %s", got, want)
		}
		// Exactly one rotation per key in the emulator's history.
		report(t, "emulator state over every run", oracle.CheckRotations(initial, snapshot(t, env.KMS), append([]*oracle.Report{first}, append(reports, last)...)...))
	})

	t.Run(`"wait": false returns at once; a repeat in the gap spends nothing`, func(t *testing.T) {
		env, c, old := start(t, nil)
		initial := snapshot(t, env.KMS)
		r, inv, entries := invokeChecked(t, env, env.Function, noWait(t, incident))
		wantOutcomes(t, r, map[string]string{"alias/kms-due": "rotated", "alias/byok-due": "rotated"})
		if inv.Duration >= rotationDelay+materialDelay {
			t.Errorf(`"wait": false: the incident took %v, as long as the rotation`, inv.Duration)
		}
		for _, k := range splitKeys {
			e := entries[k]
			if completion, has := e["completion"]; has && completion != "pending" {
				t.Errorf("%s: completion %#v with \"wait\": false, want pending or absent", k, completion)
			}
			if _, has := e["completedAt"]; has {
				t.Errorf("%s: completedAt %#v with \"wait\": false", k, e["completedAt"])
			}
			if str(e, "keyMaterialIdBefore") != old[k] {
				t.Errorf("%s: keyMaterialIdBefore %#v, want %s", k, e["keyMaterialIdBefore"], old[k])
			}
		}
		waitUntil(t, "the rotations' status cleared", func() bool { return statusCleared(t, c, splitKeys...) })
		// The same request again ("wait" is not part of a request's
		// identity): a repeat, answered with the first run's report.
		repeat, _, _ := invokeChecked(t, env, env.Function, incident)
		if repeat.RepeatOf != r.RunID {
			t.Errorf("repeated incident in the gap: repeatOf %q, want the first run %s", repeat.RepeatOf, r.RunID)
		}
		// Another request for the keys in the gap finds them claimed or
		// recently rotated, never rotates them again.
		other := incidentFor("INC-3 the same keys, another responder", false, splitKeys...)
		again, _, _ := invokeChecked(t, env, env.Function, other)
		for _, k := range splitKeys {
			if got := outcomeOf(again, k); got != "skipped/recently-rotated" && !contains(gapOutcomes[k], got) {
				t.Errorf("another incident in the gap: %s %q, want recently-rotated or one of %q", k, got, gapOutcomes[k])
			}
		}
		report(t, "emulator state", oracle.CheckRotations(initial, snapshot(t, env.KMS), r, repeat, again))
		if n := rotateCalls(t, env.KMS); n != 2 {
			t.Errorf("%d RotateKeyOnDemand calls, want 2", n)
		}
	})

	t.Run("an incident whose wait ends before the material reports completion pending", func(t *testing.T) {
		env, c, old := start(t, map[string]string{"ROTATOR_INCIDENT_WAIT": "2s"})
		r, inv, entries := invokeChecked(t, env, env.Function, incident)
		wantOutcomes(t, r, map[string]string{"alias/kms-due": "rotated", "alias/byok-due": "rotated"})
		for _, k := range splitKeys {
			e := entries[k]
			if str(e, "completion") != "pending" {
				t.Errorf("%s: completion %#v after a 2 s wait for a 4 s rotation, want pending", k, e["completion"])
			}
			if _, has := e["completedAt"]; has {
				t.Errorf("%s: completedAt %#v on a pending rotation", k, e["completedAt"])
			}
			if currentMaterial(t, c, k) != old[k] && inv.Duration < rotationDelay+materialDelay {
				t.Errorf("%s: the material changed within the wait, yet the incident says pending", k)
			}
		}
		if inv.Duration < 2*time.Second || inv.Duration >= rotationDelay+materialDelay+2*time.Second {
			t.Errorf("the incident took %v with ROTATOR_INCIDENT_WAIT=2s, want about 2 s", inv.Duration)
		}
	})
}

// idleFleet: due keys (newest rotation 120 days ago, usage tracked for 250
// days) with and without cryptographic use since that rotation, one whose
// tracking began after its rotation (nothing can be said), and an imported
// key with staged material that is idle too.
const idleFleet = `[
 {"alias":"alias/idle-used-before","createdDaysAgo":400,"rotations":[{"type":"ON_DEMAND","daysAgo":120}],
  "trackingStartedDaysAgo":250,"lastUsedDaysAgo":200,"lastUsedOperation":"Decrypt","tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/idle-never-used","createdDaysAgo":400,"rotations":[{"type":"ON_DEMAND","daysAgo":120}],
  "trackingStartedDaysAgo":250,"tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/used-since","createdDaysAgo":400,"rotations":[{"type":"ON_DEMAND","daysAgo":120}],
  "trackingStartedDaysAgo":250,"lastUsedDaysAgo":5,"tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/used-by-the-test","createdDaysAgo":400,"rotations":[{"type":"ON_DEMAND","daysAgo":120}],
  "trackingStartedDaysAgo":250,"tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/tracked-since-60-days","createdDaysAgo":400,"rotations":[{"type":"ON_DEMAND","daysAgo":120}],
  "trackingStartedDaysAgo":60,"tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/idle-imported","origin":"EXTERNAL","stagedMaterial":true,"createdDaysAgo":400,"rotations":[{"type":"ON_DEMAND","daysAgo":120}],
  "trackingStartedDaysAgo":250,"lastUsedDaysAgo":150,"tags":{"kms-rotator":"enabled"}}]`

// TestIdleKeysAreSparedWhenAsked: with ROTATOR_SKIP_IDLE=true a due key
// with no cryptographic use since its newest rotation (GetKeyLastUsage,
// tracked since before that rotation) is skipped idle with lastUsedAt — the
// last use, or null when never used — and a key used since (here by an
// Encrypt the test makes through the SDK) is rotated; without the setting
// every due key rotates; incidents never skip an idle key; report mode
// shows lastUsedAt.
func TestIdleKeysAreSparedWhenAsked(t *testing.T) {
	skipIdle := map[string]string{"ROTATOR_SKIP_IDLE": "true"}
	tests := []struct {
		name    string
		fnEnv   map[string]string
		payload string
		want    map[string]string
	}{
		{name: "sweep with ROTATOR_SKIP_IDLE skips the idle keys and rotates the used ones", fnEnv: skipIdle, payload: `{"mode":"scheduled"}`,
			want: map[string]string{"alias/idle-used-before": "skipped/idle", "alias/idle-never-used": "skipped/idle", "alias/idle-imported": "skipped/idle",
				"alias/used-since": "rotated", "alias/used-by-the-test": "rotated", "alias/tracked-since-60-days": "rotated"}},
		{name: "plan with ROTATOR_SKIP_IDLE decides the same and rotates nothing", fnEnv: skipIdle, payload: `{"mode":"plan"}`,
			want: map[string]string{"alias/idle-used-before": "skipped/idle", "alias/idle-never-used": "skipped/idle", "alias/idle-imported": "skipped/idle",
				"alias/used-since": "would-rotate", "alias/used-by-the-test": "would-rotate", "alias/tracked-since-60-days": "would-rotate"}},
		{name: "sweep without the setting rotates every due key", payload: `{"mode":"scheduled"}`,
			want: map[string]string{"alias/idle-used-before": "rotated", "alias/idle-never-used": "rotated", "alias/idle-imported": "rotated",
				"alias/used-since": "rotated", "alias/used-by-the-test": "rotated", "alias/tracked-since-60-days": "rotated"}},
		{name: "incident with ROTATOR_SKIP_IDLE still rotates an idle key", fnEnv: skipIdle,
			payload: `{"mode":"incident","reason":"INC-1203 idle but exposed","keys":["alias/idle-never-used","alias/idle-used-before"]}`,
			want:    map[string]string{"alias/idle-never-used": "rotated", "alias/idle-used-before": "rotated"}},
		{name: "report shows every key's last use", payload: `{"mode":"report","usage":true}`,
			want: map[string]string{"alias/idle-used-before": "would-rotate", "alias/idle-never-used": "would-rotate", "alias/used-since": "would-rotate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := harness.StartTB(t, harness.Options{
				KMSLocal: harness.KMSLocalOptions{FleetJSON: idleFleet, Args: completeAtOnce},
				Function: harness.FunctionOptions{Env: tt.fnEnv},
			})
			c := env.KMS.KMS("")
			// A use the emulator records now: GetKeyLastUsage must see it.
			if _, err := c.Encrypt(t.Context(), &kms.EncryptInput{KeyId: aws.String("alias/used-by-the-test"), Plaintext: []byte("order 4711")}); err != nil {
				t.Fatalf("encrypt: %v", err)
			}
			r, _, entries := invokeChecked(t, env, env.Function, []byte(tt.payload))
			wantOutcomes(t, r, tt.want)
			lastUsed := map[string]time.Duration{"alias/idle-used-before": 200 * 24 * time.Hour, "alias/idle-imported": 150 * 24 * time.Hour,
				"alias/used-since": 5 * 24 * time.Hour, "alias/used-by-the-test": 0}
			for alias, want := range tt.want {
				e := entries[alias]
				if !strings.HasSuffix(want, "/idle") && tt.payload != `{"mode":"report","usage":true}` {
					continue
				}
				v, has := e["lastUsedAt"]
				if !has {
					t.Errorf("%s (%s): no lastUsedAt", alias, want)
					continue
				}
				ago, used := lastUsed[alias]
				switch at, ok := entryTime(e, "lastUsedAt"); {
				case !used && v != nil:
					t.Errorf("%s (%s): lastUsedAt %#v for a key never used, want null", alias, want, v)
				case used && (!ok || time.Since(at) < ago-time.Hour || time.Since(at) > ago+time.Hour):
					t.Errorf("%s (%s): lastUsedAt %#v, want about %v ago", alias, want, v, ago)
				}
			}
		})
	}
}
