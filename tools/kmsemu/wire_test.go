package kmsemu_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// post sends a raw AWS JSON 1.1 request, as an SDK without our help would.
func post(t testing.TB, h http.Handler, target, auth string, body []byte) (int, map[string]any, http.Header) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("response is not a JSON object: %q", rec.Body.String())
	}
	return rec.Code, out, rec.Header()
}

func newServer(t testing.TB) *kmsemu.Server {
	t.Helper()
	s := kmsemu.New(kmsemu.Options{Account: acct, Now: newClock().Now})
	if err := s.LoadFleet(strings.NewReader(testFleet)); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWireProtocol(t *testing.T) {
	s := newServer(t)
	cases := []struct {
		name, target string
		body         string
		status       int
		code         string
	}{
		{"garbage JSON is SerializationException", "TrentService.DescribeKey", `{"KeyId":`, 400, "SerializationException"},
		{"wrong member type is SerializationException", "TrentService.DescribeKey", `{"KeyId":5}`, 400, "SerializationException"},
		{"array body is SerializationException", "TrentService.ListKeys", `[]`, 400, "SerializationException"},
		{"missing KeyId is ValidationException", "TrentService.RotateKeyOnDemand", `{}`, 400, "ValidationException"},
		{"empty body is an empty request", "TrentService.DescribeKey", ``, 400, "ValidationException"},
		{"null body is an empty request", "TrentService.ListKeys", `null`, 200, ""},
		{"unknown KMS operation is UnknownOperationException", "TrentService.Frobnicate", `{}`, 400, "UnknownOperationException"},
		{"missing target is UnknownOperationException", "", `{}`, 400, "UnknownOperationException"},
		{"tagging operation we do not serve is UnknownOperationException", "ResourceGroupsTaggingAPI_20170126.TagResources", `{}`, 400, "UnknownOperationException"},
		{"tagging garbage is SerializationException", "ResourceGroupsTaggingAPI_20170126.GetResources", `{"TagFilters":"x"}`, 400, "SerializationException"},
		{"tagging validation is InvalidParameterException", "ResourceGroupsTaggingAPI_20170126.GetResources", `{"ResourcesPerPage":0}`, 400, "InvalidParameterException"},
		{"oversized body is ValidationException", "TrentService.DescribeKey", `{"KeyId":"` + strings.Repeat("a", 1<<20) + `"}`, 400, "ValidationException"},
		{"unknown members are ignored", "TrentService.DescribeKey", `{"KeyId":"` + keyA + `","Extra":{"x":[1]}}`, 200, ""},
		{"float where an integer is due is SerializationException", "TrentService.ListKeys", `{"Limit":1.5}`, 400, "SerializationException"},
		{"unknown EventBridge operation is UnknownOperationException", "AWSEvents.PutRule", `{}`, 400, "UnknownOperationException"},
		{"PutEvents garbage is SerializationException", "AWSEvents.PutEvents", `{"Entries":`, 400, "SerializationException"},
		{"PutEvents entries of the wrong type is SerializationException", "AWSEvents.PutEvents", `{"Entries":"x"}`, 400, "SerializationException"},
		{"PutEvents Time as a string is SerializationException", "AWSEvents.PutEvents", `{"Entries":[{"Source":"s","DetailType":"t","Detail":"{}","Time":"2026-11-26T12:00:00Z"}]}`, 400, "SerializationException"},
		{"PutEvents without Entries is ValidationException", "AWSEvents.PutEvents", `{}`, 400, "ValidationException"},
		{"PutEvents with empty Entries is ValidationException", "AWSEvents.PutEvents", `{"Entries":[]}`, 400, "ValidationException"},
		{"PutEvents with an EndpointId is served by this region", "AWSEvents.PutEvents", `{"EndpointId":"abcde.veo","Entries":[{"Source":"s","DetailType":"t","Detail":"{}"}]}`, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, out, h := post(t, s, c.target, "", []byte(c.body))
			if status != c.status || (c.code != "" && out["__type"] != c.code) {
				t.Fatalf("got %d %v, want %d %s", status, out, c.status, c.code)
			}
			if h.Get("Content-Type") != "application/x-amz-json-1.1" || h.Get("X-Amzn-RequestId") == "" {
				t.Fatalf("headers %v", h)
			}
			if c.code != "" && out["message"] == nil {
				t.Fatalf("error without message: %v", out)
			}
		})
	}
	t.Run("region comes from the SigV4 credential scope", func(t *testing.T) {
		auth := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/eu-west-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
		status, out, _ := post(t, s, "TrentService.DescribeKey", auth, []byte(`{"KeyId":"alias/global"}`))
		md, _ := out["KeyMetadata"].(map[string]any)
		if status != 200 || md["Arn"] != arn("eu-west-1", mrk) {
			t.Fatalf("got %d %v", status, out)
		}
	})
	t.Run("PutEvents answers each entry with EventId or ErrorCode and ErrorMessage", func(t *testing.T) {
		status, out, _ := post(t, s, "AWSEvents.PutEvents", "", []byte(`{"Entries":[{"Source":"s","DetailType":"t","Detail":"[]"},{"Source":"s","DetailType":"t","Detail":"{}","Time":1764158400.5}]}`))
		entries, _ := out["Entries"].([]any)
		if status != 200 || out["FailedEntryCount"] != 1.0 || len(entries) != 2 {
			t.Fatalf("got %d %v", status, out)
		}
		bad, good := entries[0].(map[string]any), entries[1].(map[string]any)
		if len(bad) != 2 || bad["ErrorCode"] != "MalformedDetail" || bad["ErrorMessage"] == "" {
			t.Fatalf("failed entry %v, want exactly ErrorCode and ErrorMessage", bad)
		}
		if id, _ := good["EventId"].(string); len(good) != 1 || id == "" {
			t.Fatalf("accepted entry %v, want exactly EventId", good)
		}
	})
	t.Run("PutEvents's internal error is EventBridge's InternalException", func(t *testing.T) {
		fs := kmsemu.New(kmsemu.Options{FailRate: 1})
		status, out, _ := post(t, fs, "AWSEvents.PutEvents", "", []byte(`{"Entries":[{"Source":"s","DetailType":"t","Detail":"{}"}]}`))
		if status != 500 || out["__type"] != "InternalException" {
			t.Fatalf("got %d %v", status, out)
		}
	})
	t.Run("timestamps are epoch seconds as JSON numbers", func(t *testing.T) {
		_, out, _ := post(t, s, "TrentService.DescribeKey", "", []byte(`{"KeyId":"`+keyA+`"}`))
		if _, ok := out["KeyMetadata"].(map[string]any)["CreationDate"].(float64); !ok {
			t.Fatalf("CreationDate is not a number: %v", out)
		}
	})
	t.Run("GET on the API path is UnknownOperationException", func(t *testing.T) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "UnknownOperationException") {
			t.Fatalf("got %d %s", rec.Code, rec.Body)
		}
	})
}

// seedBodies are real request bodies, as the SDK serializes them.
var seedBodies = []struct{ target, body string }{
	{"TrentService.DescribeKey", `{"KeyId":"alias/a"}`},
	{"TrentService.ListKeys", `{"Limit":2,"Marker":"a2V5cwA"}`},
	{"TrentService.ListAliases", `{"KeyId":"` + keyA + `","Limit":10}`},
	{"TrentService.ListResourceTags", `{"KeyId":"` + keyA + `"}`},
	{"TrentService.GetKeyRotationStatus", `{"KeyId":"` + keyA + `"}`},
	{"TrentService.ListKeyRotations", `{"KeyId":"` + keyA + `","Limit":1,"IncludeKeyMaterial":"ROTATIONS_ONLY"}`},
	{"TrentService.RotateKeyOnDemand", `{"KeyId":"` + arn("us-east-1", keyB) + `"}`},
	{"TrentService.CreateKey", `{"KeySpec":"HMAC_256","KeyUsage":"GENERATE_VERIFY_MAC","Tags":[{"TagKey":"a","TagValue":"b"}],"MultiRegion":false}`},
	{"TrentService.CreateAlias", `{"AliasName":"alias/x","TargetKeyId":"` + keyB + `"}`},
	{"TrentService.DeleteAlias", `{"AliasName":"alias/a"}`},
	{"TrentService.TagResource", `{"KeyId":"` + keyB + `","Tags":[{"TagKey":"k","TagValue":"v"}]}`},
	{"TrentService.UntagResource", `{"KeyId":"` + keyB + `","TagKeys":["k"]}`},
	{"TrentService.EnableKey", `{"KeyId":"` + keyDis + `"}`},
	{"TrentService.DisableKey", `{"KeyId":"` + keyB + `"}`},
	{"TrentService.ScheduleKeyDeletion", `{"KeyId":"` + keyB + `","PendingWindowInDays":7}`},
	{"TrentService.CancelKeyDeletion", `{"KeyId":"` + keyDel + `"}`},
	{"TrentService.ReplicateKey", `{"KeyId":"` + mrk + `","ReplicaRegion":"us-west-2"}`},
	{"TrentService.EnableKeyRotation", `{"KeyId":"` + keyB + `","RotationPeriodInDays":90}`},
	{"TrentService.DisableKeyRotation", `{"KeyId":"` + keyB + `"}`},
	{"TrentService.Encrypt", `{"KeyId":"alias/a","Plaintext":"aGVsbG8=","EncryptionContext":{"a":"b"}}`},
	{"TrentService.Decrypt", `{"CiphertextBlob":"AQ==","KeyId":"alias/a"}`},
	{"ResourceGroupsTaggingAPI_20170126.GetResources", `{"ResourceTypeFilters":["kms:key"],"TagFilters":[{"Key":"kms-rotator","Values":["enabled"]}],"ResourcesPerPage":2}`},
	{"AWSEvents.PutEvents", `{"Entries":[{"Source":"kms-rotator","DetailType":"KMS Rotation Run Completed","Detail":"{\"runId\":\"r\",\"summary\":{\"rotated\":1}}","Resources":["arn:aws:kms:us-east-1:012345678912:key/1234abcd-12ab-34cd-56ef-1234567890ab"],"Time":1764158400,"EventBusName":"default"}]}`},
}

// FuzzServeHTTP feeds arbitrary operations and bodies to the handler: every
// answer must be a JSON object with a 200, 400 or 500 status, errors with a
// __type, and nothing may panic or hang.
func FuzzServeHTTP(f *testing.F) {
	for _, s := range seedBodies {
		f.Add(s.target, []byte(s.body))
	}
	s := newServer(f)
	f.Fuzz(func(t *testing.T, target string, body []byte) {
		status, out, _ := post(t, s, target, "", body)
		switch status {
		case 200:
		case 400, 500:
			if c, _ := out["__type"].(string); c == "" {
				t.Fatalf("error %d without __type: %v", status, out)
			}
		default:
			t.Fatalf("status %d", status)
		}
	})
}

func TestSeedBodiesAreServed(t *testing.T) {
	s := newServer(t)
	for _, c := range seedBodies {
		t.Run(c.target+" is answered without a protocol error", func(t *testing.T) {
			status, out, _ := post(t, s, c.target, "", []byte(c.body))
			switch out["__type"] {
			case "SerializationException", "UnknownOperationException", "ValidationException":
				t.Fatalf("seed rejected: %d %v", status, out)
			}
		})
	}
}
