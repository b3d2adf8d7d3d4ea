package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cloudformationinclude"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// TestMemberTemplateNagReportsNoError runs cdk-nag's AwsSolutions checks on
// the StackSet's member template, which the central stack's checks cannot
// see (it is a string there): the template is included in a stack of its
// own (cloudformation-include) and checked like the central stack, with
// Security Hub findings off (the member role's KMS statements) and on (and
// its Security Hub statements).
func TestMemberTemplateNagReportsNoError(t *testing.T) {
	for _, securityHub := range []bool{false, true} {
		t.Run(fmt.Sprintf("securityHub=%t", securityHub), func(t *testing.T) {
			ctx := maps.Clone(orgContext)
			ctx[functionKey(settings.EnvSecurityHub)] = securityHub
			s, err := SettingsFromContext(func(k string) any { return ctx[k] })
			if err != nil {
				t.Fatal(err)
			}
			body, err := memberTemplate(s)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(body, "securityhub:BatchImportFindings"); got != securityHub {
				t.Fatalf("the member template grants BatchImportFindings: %t", got)
			}
			file := filepath.Join(t.TempDir(), "member.json")
			if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			app := awscdk.NewApp(nil)
			stack := awscdk.NewStack(app, jsii.String("Member"), nil)
			cloudformationinclude.NewCfnInclude(stack, jsii.String("Template"), &cloudformationinclude.CfnIncludeProps{TemplateFile: jsii.String(file)})
			awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
			ann := assertions.Annotations_FromStack(stack)
			for _, f := range *ann.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
				t.Errorf("unsuppressed error %s", mustJSON(f))
			}
			for _, f := range *ann.FindWarning(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
				t.Errorf("unsuppressed warning %s", mustJSON(f))
			}
		})
	}
}
