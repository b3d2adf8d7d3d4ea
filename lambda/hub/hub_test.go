package hub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

func TestRequestsAreSignedAndErrorsNamed(t *testing.T) {
	var got struct {
		path, auth string
		body       map[string]any
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.path, got.auth = r.URL.Path, r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &got.body)
		if r.URL.Path == "/findings" {
			w.Header().Set("X-Amzn-Errortype", "InvalidAccessException")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"Message":"Account is not subscribed to AWS Security Hub"}`))
			return
		}
		_, _ = w.Write([]byte(`{"SuccessCount":1,"FailedFindings":[{"Id":"b","ErrorCode":"InvalidInput","ErrorMessage":"x"}]}`))
	}))
	defer srv.Close()
	c := New(aws.Config{Region: "eu-west-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
	n, failed, err := c.BatchImportFindings(context.Background(), []Finding{{ID: "a"}, {ID: "b"}})
	if err != nil || n != 1 || len(failed) != 1 || failed[0].ID != "b" {
		t.Fatalf("BatchImportFindings = %d, %+v, %v", n, failed, err)
	}
	if got.path != "/findings/import" || !strings.Contains(got.auth, "Credential=AKIDEXAMPLE/") || !strings.Contains(got.auth, "/eu-west-1/securityhub/aws4_request") {
		t.Errorf("request to %s with Authorization %q, want a SigV4-signed POST to /findings/import", got.path, got.auth)
	}
	if fs, _ := got.body["Findings"].([]any); len(fs) != 2 {
		t.Errorf("body %v, want two findings", got.body)
	}
	_, _, err = c.GetFindings(context.Background(), Filters{GeneratorID: []StringFilter{{Value: "kms-rotator/", Comparison: "PREFIX"}}}, "")
	var he *Error
	if !errors.As(err, &he) || he.Code != "InvalidAccessException" || he.Status != 403 || !strings.Contains(he.Message, "not subscribed") {
		t.Fatalf("GetFindings error = %v, want the code and message", err)
	}
	if f, _ := got.body["Filters"].(map[string]any); f["GeneratorId"] == nil {
		t.Errorf("filters not sent: %v", got.body)
	}
}

func TestEndpointOfEachPartition(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_SECURITYHUB", "")
	for region, want := range map[string]string{
		"us-east-1":      "https://securityhub.us-east-1.amazonaws.com",
		"cn-north-1":     "https://securityhub.cn-north-1.amazonaws.com.cn",
		"eusc-de-east-1": "https://securityhub.eusc-de-east-1.amazonaws.eu",
	} {
		if got := New(aws.Config{Region: region}).endpoint; got != want {
			t.Errorf("%s: endpoint %s, want %s", region, got, want)
		}
	}
	t.Setenv("AWS_ENDPOINT_URL_SECURITYHUB", "http://127.0.0.1:1/")
	if got := New(aws.Config{Region: "us-east-1"}).endpoint; got != "http://127.0.0.1:1" {
		t.Errorf("AWS_ENDPOINT_URL_SECURITYHUB: endpoint %s", got)
	}
}
