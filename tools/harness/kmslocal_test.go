package harness

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// TestKMSLocalEventsReadAndReset drives Events and ResetEvents against the
// emulator in process (the same handler kmslocal serves), without building
// and starting the command.
func TestKMSLocalEventsReadAndReset(t *testing.T) {
	srv := kmsemu.New(kmsemu.Options{Account: Account})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	k := &KMSLocal{URL: hs.URL, Account: Account, Region: Region, client: hs.Client()}

	evs, err := k.Events(t.Context())
	if err != nil || evs == nil || len(evs) != 0 {
		t.Fatalf("before any event: %v, %v; want an empty list", evs, err)
	}
	body := `{"Entries":[{"Source":"kms-rotator","DetailType":"KMS Rotation Run Completed","Detail":"{\"runId\":\"r-1\"}"}]}`
	req, _ := http.NewRequest(http.MethodPost, hs.URL, strings.NewReader(body))
	req.Header.Set("X-Amz-Target", "AWSEvents.PutEvents")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	evs, err = k.Events(t.Context())
	if err != nil || len(evs) != 1 || evs[0].DetailType != "KMS Rotation Run Completed" || evs[0].Detail != `{"runId":"r-1"}` ||
		evs[0].EventBusName != "default" || evs[0].Account != Account || evs[0].Time.IsZero() {
		t.Fatalf("after one PutEvents: %+v, %v", evs, err)
	}
	if err := k.ResetEvents(t.Context()); err != nil {
		t.Fatal(err)
	}
	if evs, err = k.Events(t.Context()); err != nil || len(evs) != 0 {
		t.Fatalf("after reset: %+v, %v", evs, err)
	}
	hs.Close()
	if _, err := k.Events(t.Context()); err == nil || !strings.Contains(err.Error(), "/_kmslocal/events") {
		t.Fatalf("stopped emulator: err %v, want one naming the path", err)
	}
}

func TestKMSLocalListAfterMaterialOption(t *testing.T) {
	bins := kmslocalOnly(t)
	for _, tt := range []struct {
		name              string
		listAfterMaterial bool
		listed            int
	}{
		{"without it a rotation whose material is pending is listed", false, 1},
		{"with it a rotation whose material is pending is not listed", true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := StartKMSLocal(t.Context(), bins, KMSLocalOptions{
				FleetJSON: `[{"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}]`, ListAfterMaterial: tt.listAfterMaterial,
				Args: []string{"-rotation-delay=0", "-material-delay=1h", "-quiet"},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			c, id := k.KMS(""), aws.String("1234abcd-12ab-34cd-56ef-1234567890ab")
			if _, err := c.RotateKeyOnDemand(t.Context(), &kms.RotateKeyOnDemandInput{KeyId: id}); err != nil {
				t.Fatal(err)
			}
			out, err := c.ListKeyRotations(t.Context(), &kms.ListKeyRotationsInput{KeyId: id})
			if err != nil || len(out.Rotations) != tt.listed {
				t.Fatalf("ListKeyRotations: %v, %d rotations; want %d", err, len(out.Rotations), tt.listed)
			}
		})
	}
}
