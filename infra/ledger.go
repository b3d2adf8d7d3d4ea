package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/jsii-runtime-go"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// newLedgerTable is the rotation ledger (docs/deploy.md "The rotation
// ledger"): the DynamoDB table where the function writes a claim before
// every RotateKeyOnDemand and keeps it, with who asked and why, for
// ROTATOR_LEDGER_RETENTION. One per deployment: in organization mode the
// central function claims every member account's keys here, and the
// member template holds only the member role.
//
// Its key schema and time-to-live attribute are the function's
// (settings.LedgerPartitionKey, LedgerSortKey, LedgerTTLAttribute).
// CloudFormation names it: the table is retained when the stack is deleted,
// and a fixed name would make the next deployment fail on the kept table.
func newLedgerTable(stack awscdk.Stack) awsdynamodb.Table {
	return awsdynamodb.NewTable(stack, jsii.String("LedgerTable"), &awsdynamodb.TableProps{
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String(settings.LedgerPartitionKey), Type: awsdynamodb.AttributeType_STRING},
		SortKey:      &awsdynamodb.Attribute{Name: jsii.String(settings.LedgerSortKey), Type: awsdynamodb.AttributeType_STRING},
		// A few items per rotation and per incident request: on-demand
		// capacity costs nothing while idle and needs no capacity planning.
		BillingMode: awsdynamodb.BillingMode_PAY_PER_REQUEST,
		// The ledger is evidence: point-in-time recovery restores it after
		// a bad write or a deleted item (cdk-nag AwsSolutions-DDB3), deletion
		// protection refuses DeleteTable
		// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithTables.Basics.html),
		// and the table outlives the stack.
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: jsii.Bool(true)},
		DeletionProtection:               jsii.Bool(true),
		RemovalPolicy:                    awscdk.RemovalPolicy_RETAIN,
		// DynamoDB deletes an item some time after the epoch second in
		// expiresAt (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html);
		// the function sets it from ROTATOR_LEDGER_RETENTION.
		TimeToLiveAttribute: jsii.String(settings.LedgerTTLAttribute),
		// Encrypted at rest with DynamoDB's AWS owned key, its default
		// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/EncryptionAtRest.html):
		// the items hold key ARNs, run IDs and the reasons responders gave,
		// no key material, and a customer managed key would add a key
		// policy the function's role must be granted; cdk-nag's AwsSolutions
		// pack asks for none.
		Encryption: awsdynamodb.TableEncryption_DEFAULT,
	})
}
