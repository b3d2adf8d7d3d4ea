// Command infra is the kms-rotator CDK app (`"app": "go run ./infra"` in
// cdk.json): one RotatorStack per region named in the context key regions
// (default: the CLI's region), checked by cdk-nag's AwsSolutions rules.
package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	// The IANA time zone database, built in: scheduleTimezone is checked
	// (and the schedule's gaps computed) the same way on every machine.
	_ "time/tzdata"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	if err := addStacks(app, nil); err != nil {
		fmt.Fprintln(os.Stderr, "kms-rotator:", err)
		jsii.Close()
		os.Exit(1)
	}
	app.Synth(nil)
}

// addStacks reads the settings from context and adds the stacks and the
// cdk-nag checks to app. A nil newCode builds the function from ./lambda;
// it is called once per stack, as an asset belongs to one stack.
func addStacks(app awscdk.App, newCode func() awslambda.Code) error {
	all, _ := app.Node().GetAllContext(nil).(map[string]any)
	settings, err := SettingsFromAllContext(all)
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	moduleDir, err := findModuleRoot(wd)
	if err != nil {
		return err
	}
	envs := stackEnvs(settings.StackName, settings.Regions, os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"))
	// The CLI's Region and account, when the settings name no Region:
	// the same partition and account checks as for -c regions.
	for _, st := range envs {
		if st.env == nil {
			continue
		}
		if st.env.Region != nil && len(settings.Regions) == 0 {
			p := regionPartition(*st.env.Region)
			if p != "" && !slices.Contains(supportedPartitions, p) {
				return fmt.Errorf("invalid CDK context:\n  the stack's Region %s (the CLI's) is of partition %s, which kms-rotator does not deploy to (%s)",
					*st.env.Region, p, strings.Join(supportedPartitions, ", "))
			}
			if why := settings.partitionMismatch(p); p != "" && why != "" {
				return fmt.Errorf("invalid CDK context:\n  -c %s=%s: %s", ctxPermissionsBoundaryARN, settings.PermissionsBoundary.ARN, why)
			}
		}
		if st.env.Account != nil {
			if why := settings.boundaryAccountMismatch(*st.env.Account); why != "" {
				return fmt.Errorf("invalid CDK context:\n  -c %s=%s: %s", ctxPermissionsBoundaryARN, settings.PermissionsBoundary.ARN, why)
			}
		}
	}
	if acct := principalAccount(settings.IncidentPrincipals); acct != "" {
		for _, st := range envs {
			if st.env != nil && st.env.Account != nil && *st.env.Account != acct {
				return fmt.Errorf("invalid CDK context:\n  -c %s: the roles are of account %s, the stack deploys to %s; the incident rule matches only the stack's account",
					ctxIncidentPrincipals, acct, *st.env.Account)
			}
		}
	}
	if m := topicARNRE.FindStringSubmatch(settings.AlarmTopicARN); m != nil {
		for _, st := range envs {
			if st.env != nil && st.env.Region != nil && *st.env.Region != m[2] {
				return fmt.Errorf("invalid CDK context:\n  -c %s=%s: %s", ctxAlarmTopicARN, settings.AlarmTopicARN, topicRegionMismatch(m[2], *st.env.Region))
			}
		}
	}
	for _, st := range envs {
		NewRotatorStack(app, st.id, &RotatorStackProps{
			StackProps: awscdk.StackProps{
				Env:         st.env,
				StackName:   jsii.String(settings.StackName),
				Description: jsii.String("kms-rotator: on-demand rotation of opted-in KMS keys (scheduled sweep, incident rotation, dashboard, alarms)"),
				// A `cdk destroy` or a delete-stack by mistake would take
				// the function, its alarms and (in organization mode) the
				// state machine with it; turning this off is a deliberate
				// step (docs/deploy.md "Teardown").
				TerminationProtection: jsii.Bool(true),
				Tags:                  stackTags(settings),
			},
			Settings:  settings,
			ModuleDir: moduleDir,
			Code:      code(newCode),
		})
	}
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return nil
}

// stackEnvs names one stack per region. Without regions the single stack
// takes the CLI's account and region when it has them, and is otherwise
// environment-agnostic (synth works without credentials either way).
//
// stackName (the context key, KmsRotator by default) is the CloudFormation
// stack name in every Region. The construct IDs differ (<stackName>, or
// <stackName>-<region> with -c regions=…) because an app's stacks need
// distinct IDs, but the deployed stack keeps its name, and its resources
// their logical IDs, either way: switching between the single-Region form
// and regions=… updates the stack in place instead of creating a second one
// next to it.
func stackEnvs(stackName string, regions []string, account, defaultRegion string) []stackEnv {
	var envs []stackEnv
	var acct *string
	if account != "" {
		acct = jsii.String(account)
	}
	if len(regions) == 0 {
		if defaultRegion == "" && acct == nil {
			return append(envs, stackEnv{id: stackName})
		}
		env := &awscdk.Environment{Account: acct}
		if defaultRegion != "" {
			env.Region = jsii.String(defaultRegion)
		}
		return append(envs, stackEnv{id: stackName, env: env})
	}
	for _, r := range regions {
		envs = append(envs, stackEnv{id: stackName + "-" + r, env: &awscdk.Environment{Account: acct, Region: jsii.String(r)}})
	}
	return envs
}

// stackEnv is one stack's construct ID and environment.
type stackEnv struct {
	id  string
	env *awscdk.Environment
}

func code(newCode func() awslambda.Code) awslambda.Code {
	if newCode == nil {
		return nil
	}
	return newCode()
}
