package settings

// KMSRequestQuotas are KMS's default request quotas, in requests per second
// per account and Region, of the operations the function and the local
// emulator serve
// (https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html).
// The function paces each of its KMS calls at its share of these (the
// share ROTATOR_ROTATE_RPS takes of RotateKeyOnDemand's 5), and the
// emulator throttles at them (-quota-scale 1): one table, so the emulator
// cannot drift from the page the pacing relies on.
var KMSRequestQuotas = map[string]float64{
	"RotateKeyOnDemand":         5,
	"GetKeyLastUsage":           5,
	"ListKeyRotations":          100,
	"GetKeyRotationStatus":      1000,
	"DescribeKey":               2000,
	"ListResourceTags":          2000,
	"ListKeys":                  500,
	"ListAliases":               500,
	"CreateKey":                 5,
	"CreateAlias":               5,
	"DeleteAlias":               15,
	"TagResource":               10,
	"UntagResource":             5,
	"EnableKeyRotation":         15,
	"DisableKeyRotation":        5,
	"ScheduleKeyDeletion":       15,
	"GetParametersForImport":    1,
	"ImportKeyMaterial":         15,
	"DeleteImportedKeyMaterial": 15,
	"ReplicateKey":              5,
	"CancelKeyDeletion":         5,
	"DisableKey":                5,
	"EnableKey":                 5,
}
