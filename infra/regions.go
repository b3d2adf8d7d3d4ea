package main

import (
	"fmt"
	"slices"
	"strings"
)

// partitionRegions are the AWS Regions of each partition: the Regions a
// stack (regions), an organization sweep (orgRegions) or an alarm topic
// (alarmTopicArn) may name. A name that is not one of them (us-east-9) is a
// typo, not a Region the app does not know yet: the synth refuses it rather
// than produce a stack no account can deploy. The list is the AWS SDK for Go
// v2's (module github.com/aws/aws-sdk-go-v2 of go.mod,
// internal/endpoints/awsrulesfn/partitions.json, without its "-global"
// pseudo Regions), which regions_test.go compares it with, so a new SDK that
// knows a new Region fails that test until the Region is added here; AWS's
// own list: https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html.
var partitionRegions = map[string][]string{
	"aws": {
		"af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-south-2",
		"ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
		"ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2",
		"eu-west-3", "il-central-1", "me-central-1", "me-south-1", "me-west-1", "mx-central-1", "sa-east-1", "sa-west-1",
		"us-east-1", "us-east-2", "us-west-1", "us-west-2",
	},
	"aws-cn":     {"cn-north-1", "cn-northwest-1"},
	"aws-eusc":   {"eusc-de-east-1"},
	"aws-iso":    {"us-iso-east-1", "us-iso-west-1"},
	"aws-iso-b":  {"us-isob-east-1", "us-isob-west-1"},
	"aws-iso-e":  {"eu-isoe-west-1"},
	"aws-iso-f":  {"us-isof-east-1", "us-isof-south-1"},
	"aws-us-gov": {"us-gov-east-1", "us-gov-west-1"},
}

// regionPartition is the partition of a known Region, or "" for a name
// that is not one.
func regionPartition(region string) string {
	for p, regions := range partitionRegions {
		if slices.Contains(regions, region) {
			return p
		}
	}
	return ""
}

// unknownRegion says why region is not one: what it is not, and the
// nearest known Region when one is near.
func unknownRegion(region string) string {
	var all []string
	for _, regions := range partitionRegions {
		all = append(all, regions...)
	}
	slices.Sort(all)
	msg := fmt.Sprintf("%q is not an AWS Region", region)
	if near := nearest(region, all); near != "" {
		msg += "; did you mean " + near + "?"
	}
	return msg
}

// mixedPartitions names the partitions of regions when there is more than
// one ("aws-cn: cn-north-1; aws: us-east-1"), in the order of regions, or
// returns "". Unknown Regions are left out: they are reported on their own.
func mixedPartitions(regions []string) string {
	var order []string
	by := map[string][]string{}
	for _, r := range regions {
		p := regionPartition(r)
		if p == "" {
			continue
		}
		if _, seen := by[p]; !seen {
			order = append(order, p)
		}
		by[p] = append(by[p], r)
	}
	if len(order) < 2 {
		return ""
	}
	parts := make([]string, len(order))
	for i, p := range order {
		parts[i] = p + ": " + strings.Join(by[p], ",")
	}
	return strings.Join(parts, "; ")
}
