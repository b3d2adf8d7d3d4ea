// Package conformance replays, against the KMS emulator (package kmsemu),
// behaviours that real AWS KMS showed in public recordings: call sequences
// with the status, error code, message and fields AWS answered. The table is
// testdata/recorded.json; `go test ./tools/kmsemu/conformance/` runs it over
// the emulator's HTTP wire protocol, so what is compared is what a client
// receives.
//
// The facts come from the AWS-validated snapshot recordings that LocalStack
// keeps for its KMS tests (tests/aws/services/kms/test_kms.py and
// test_kms.snapshot.json in github.com/localstack/localstack, recorded
// 2023-04 to 2026-02); each case names the recording and its date. The table
// and its wording are our own.
//
// # Table format
//
// The file holds {"cases": [...]}. A case has a name, the recording it comes
// from ("source", "recorded"), the differences it pins
// ("covers", see knownDifferences in the test), optional emulator "options" (rotationDelay,
// materialDelay, replicaDelay as Go durations; onDemandLimit) and "steps",
// run in order against a fresh emulator with a fake clock. A step is one of:
//
//   - {"call": "RotateKeyOnDemand", "region": "us-west-2", "input": {...},
//     "repeat": N, "expect": {...}, "save": {"var": "Path.To.Field"}}: one
//     KMS request (region default us-east-1). "${var}" in input strings is
//     replaced by a saved value (${zeros_N}: N zero bytes, base64). expect
//     holds "status" (default 200, 400 with a code), "code" (the error's
//     __type), "message", "noMessage" (true: the answer has no message member
//     at all, as AWS sends some errors), "fields" (path → wanted value),
//     "not" (path → a value it must not have) and "absent" (paths that must
//     not be in the answer). Wanted values are literal after ${var}
//     substitution (strings as they are, anything else compared as compact
//     JSON), or, starting with "~", anchored regular expressions in which
//     ${var} stands for the saved value literally. Paths are dotted, with
//     numbers indexing lists: "Rotations.1.KeyMaterialState". save maps a
//     variable name to a path of the answer.
//   - {"advance": "10s"}: moves the emulator's clock.
//   - {"wrap": {"publicKey": "${pk}", "algorithm": "RSAES_OAEP_SHA_256",
//     "material": "m1", "kind": "symmetric"}, "save": "w1"}: wraps key
//     material as a client does (emutest.WrapKeyMaterial) and saves it
//     base64-encoded. The material is remembered by name, so "m1" again is
//     the same bytes; kind is symmetric (32 random bytes, the default),
//     bytes:N (N random bytes), or pkcs8:RSA_2048 / pkcs8:RSA_4096 /
//     pkcs8:ECC_NIST_P256 (a new private key, PKCS#8 DER).
//   - {"append": {"to": "${ct}", "text": "bad_data"}, "save": "bad"}: saves
//     the base64 blob ${ct} with text appended.
package conformance
