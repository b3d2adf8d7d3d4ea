package kmsemu_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	tagtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// resources pages through GetResources and returns the key IDs found.
func resources(t *testing.T, e *env, c *tagging.Client, in *tagging.GetResourcesInput) (ids []string, pages int) {
	t.Helper()
	p := tagging.NewGetResourcesPaginator(c, in)
	for p.HasMorePages() {
		out := must[*tagging.GetResourcesOutput](t)(p.NextPage(e.ctx))
		pages++
		for _, m := range out.ResourceTagMappingList {
			a := aws.ToString(m.ResourceARN)
			ids = append(ids, a[strings.LastIndex(a, "/")+1:])
			if len(m.Tags) == 0 {
				t.Fatalf("%s returned without tags", a)
			}
		}
	}
	sort.Strings(ids)
	return ids, pages
}

func TestGetResources(t *testing.T) {
	e := start(t, kmsemu.Options{}, testFleet)
	kmsKey := []string{"kms:key"}
	cases := []struct {
		name    string
		filters []tagtypes.TagFilter
		types   []string
		want    []string
	}{
		{"no filter returns every tagged key, never untagged ones", nil, kmsKey, []string{keyA, keyB, keyHMAC, keyRSA, keyDis, mrk}},
		{"tag value filter", []tagtypes.TagFilter{{Key: aws.String("kms-rotator"), Values: []string{"enabled"}}}, kmsKey, []string{keyA, keyB, keyHMAC, mrk}},
		{"filters AND across keys", []tagtypes.TagFilter{{Key: aws.String("kms-rotator"), Values: []string{"enabled"}}, {Key: aws.String("team"), Values: []string{"payments"}}}, kmsKey, []string{keyA}},
		{"values OR within a key", []tagtypes.TagFilter{{Key: aws.String("team"), Values: []string{"payments", "search"}}}, kmsKey, []string{keyA, keyB, keyDis}},
		{"key without values matches any value", []tagtypes.TagFilter{{Key: aws.String("kms-rotator")}}, kmsKey, []string{keyA, keyB, keyHMAC, keyRSA, mrk}},
		{"no such tag matches nothing", []tagtypes.TagFilter{{Key: aws.String("nope")}}, kmsKey, nil},
		{"other resource types match nothing", nil, []string{"s3:bucket"}, nil},
		{"service-wide type kms matches keys", []tagtypes.TagFilter{{Key: aws.String("team"), Values: []string{"search"}}}, []string{"kms"}, []string{keyB}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _ := resources(t, e, e.tag, &tagging.GetResourcesInput{TagFilters: c.filters, ResourceTypeFilters: c.types})
			want := append([]string(nil), c.want...)
			sort.Strings(want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
	t.Run("pages of ResourcesPerPage, every key once", func(t *testing.T) {
		got, pages := resources(t, e, e.tag, &tagging.GetResourcesInput{ResourcesPerPage: aws.Int32(4), ResourceTypeFilters: kmsKey})
		if len(got) != 6 || pages != 2 {
			t.Fatalf("got %d keys in %d pages, want 6 in 2", len(got), pages)
		}
	})
	t.Run("region comes from the signature", func(t *testing.T) {
		got, _ := resources(t, e, taggingClient(e.emu, "eu-west-1"), &tagging.GetResourcesInput{})
		if len(got) != 1 || got[0] != mrk {
			t.Fatalf("eu-west-1 resources %v", got)
		}
	})
	t.Run("ResourceARNList selects keys", func(t *testing.T) {
		out := must[*tagging.GetResourcesOutput](t)(e.tag.GetResources(e.ctx, &tagging.GetResourcesInput{ResourceARNList: []string{arn("us-east-1", keyB), arn("us-east-1", keyExt)}}))
		if len(out.ResourceTagMappingList) != 1 || *out.ResourceTagMappingList[0].ResourceARN != arn("us-east-1", keyB) {
			t.Fatalf("got %+v", out.ResourceTagMappingList)
		}
	})
	errCases := []struct {
		name string
		in   tagging.GetResourcesInput
	}{
		{"ResourcesPerPage 101 is InvalidParameterException", tagging.GetResourcesInput{ResourcesPerPage: aws.Int32(101)}},
		{"bad PaginationToken is InvalidParameterException", tagging.GetResourcesInput{PaginationToken: aws.String("%%%")}},
		{"ARN list with filters is InvalidParameterException", tagging.GetResourcesInput{ResourceARNList: []string{"x"}, TagFilters: []tagtypes.TagFilter{{Key: aws.String("a")}}}},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.tag.GetResources(e.ctx, &c.in)
			wantCode(t, err, "InvalidParameterException")
		})
	}
}
