// Package e2e holds the end-to-end tests of the built function: the real
// host-arch bootstrap under the AWS Lambda Runtime Interface Emulator,
// against kmslocal, all started as processes by tools/harness. The tests
// judge the function from outside — its HTTP answers, its log lines and the
// emulator's state read through the real aws-sdk-go-v2 KMS client — never
// through the engine's Go API.
package e2e
