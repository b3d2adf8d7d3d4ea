package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	taggingtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"
	"github.com/aws/smithy-go"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// lambdaResponseLimit is the synchronous invocation response limit, 6 MB
// (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
const lambdaResponseLimit = 6 << 20

// deniedFleet is a fleet whose key policies do not delegate to IAM: every
// DescribeKey answers AccessDeniedException with the message KMS writes,
// and every key has a long alias. A hand fake is clearer here than the
// emulator: the point is thousands of large entries, fast.
type deniedFleet struct {
	rotator.KMSAPI // unimplemented methods panic: the test must not reach them
	n              int
}

func (f *deniedFleet) arn(i int) string {
	return fmt.Sprintf("arn:aws:kms:us-east-1:%s:key/%08d-1111-2222-3333-444444444444", scope.Account, i)
}

func (f *deniedFleet) DescribeKey(_ context.Context, in *kms.DescribeKeyInput, _ ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "AccessDeniedException", Fault: smithy.FaultClient, Message: "User: arn:aws:sts::" +
		scope.Account + ":assumed-role/KmsRotatorStack-RotatorFunctionServiceRole1A2B3C4D-AbCdEfGhIjKl/KmsRotatorStack-RotatorFunction5E6F7A8B-MnOpQrStUvWx" +
		" is not authorized to perform: kms:DescribeKey on resource: " + aws.ToString(in.KeyId) +
		" because no resource-based policy allows the kms:DescribeKey action"}
}

func (f *deniedFleet) ListAliases(_ context.Context, in *kms.ListAliasesInput, _ ...func(*kms.Options)) (*kms.ListAliasesOutput, error) {
	out := &kms.ListAliasesOutput{}
	for i := range f.n {
		id := fmt.Sprintf("%08d-1111-2222-3333-444444444444", i)
		out.Aliases = append(out.Aliases, kmstypes.AliasListEntry{
			AliasName:   aws.String("alias/" + strings.Repeat("payments-ledger-", 15) + strconv.Itoa(i)),
			TargetKeyId: aws.String(id),
		})
	}
	return out, nil
}

func (f *deniedFleet) GetResources(_ context.Context, in *tagging.GetResourcesInput, _ ...func(*tagging.Options)) (*tagging.GetResourcesOutput, error) {
	start, _ := strconv.Atoi(aws.ToString(in.PaginationToken))
	out := &tagging.GetResourcesOutput{}
	for i := start; i < min(start+100, f.n); i++ {
		out.ResourceTagMappingList = append(out.ResourceTagMappingList, taggingtypes.ResourceTagMapping{
			ResourceARN: aws.String(f.arn(i)),
			Tags:        []taggingtypes.Tag{{Key: aws.String("kms-rotator"), Value: aws.String("enabled")}},
		})
	}
	if start+100 < f.n {
		out.PaginationToken = aws.String(strconv.Itoa(start + 100))
	}
	return out, nil
}

// TestReportFitsTheLambdaResponseLimit: a sweep of a fleet where every key
// fails with a long error still returns a report under 6 MB, and its
// summary still counts every candidate.
func TestReportFitsTheLambdaResponseLimit(t *testing.T) {
	const n = 5600 // about 6.4 MB of entries
	f := &deniedFleet{n: n}
	cfg, err := settings.LoadConfig(mapEnv(withLedger(t, scheduledEnv(nil))))
	if err != nil {
		t.Fatal(err)
	}
	eng := rotator.New(cfg, f, f, nil, nil)
	rep, err := eng.Run(t.Context(), request.Request{Mode: request.ModeScheduled}, rotator.Invocation{RequestID: "size", Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Candidates != n || rep.Summary.Failed != n || rep.Summary.Reasons[rotator.ReasonAccessDenied] != n {
		t.Errorf("summary %+v, want all %d candidates failed access-denied", rep.Summary, n)
	}
	if got := len(rep.Keys) + rep.OmittedNotDue + rep.OmittedOther; got != n {
		t.Errorf("%d entries + %d omitted not-due + %d omitted other = %d, want every candidate (%d) accounted for",
			len(rep.Keys), rep.OmittedNotDue, rep.OmittedOther, got, n)
	}
	if len(b) > lambdaResponseLimit {
		t.Errorf("the report is %d bytes (%d entries of about %d bytes), over Lambda's %d-byte response limit",
			len(b), len(rep.Keys), len(b)/max(len(rep.Keys), 1), lambdaResponseLimit)
	}
}
