// Package harness runs the function the way Lambda would, on one machine:
// it builds the host-arch bootstrap, kmslocal and the AWS Lambda Runtime
// Interface Emulator (RIE), starts kmslocal, dynalite (the rotation
// ledger's DynamoDB, package tools/dynalite) with the ledger's
// table, and one or more RIE+bootstrap "functions" as processes on
// 127.0.0.1, invokes them over the RIE's invoke URL, captures every
// process's output, and stops everything — on Close, in t.Cleanup, and
// when the parent gets SIGINT/SIGTERM. `make demo`, the end-to-end tests,
// the fault suite and the benchmark use it.
//
// Typical test:
//
//	env := harness.StartTB(t, harness.Options{
//		KMSLocal: harness.KMSLocalOptions{Fleet: "events/fleet.json", Args: []string{"-rotation-delay=0"}},
//		Function: harness.FunctionOptions{Env: map[string]string{"ROTATOR_RESERVE": "3"}},
//	})
//	before, _ := oracle.Read(ctx, env.KMS.KMS("us-east-1"), env.KMS.KMS("eu-west-1"))
//	r, inv, err := env.Function.InvokeReport(ctx, payload) // err: *HandlerError, *InvokeError, …
//	after, _ := oracle.Read(ctx, env.KMS.KMS("us-east-1"), env.KMS.KMS("eu-west-1"))
//	problems := oracle.CheckRotations(before, after, r)    // rotated ⇔ one new rotation
//	recs, _ := inv.EMF()                                    // this invocation's EMF lines
//
// The harness runs and captures; it judges nothing. Every check of a
// report, the emulator's state, the metrics, the result event and the
// ledger is in tools/oracle.
//
// Concurrent runs (duplicate EventBridge deliveries, an incident during a
// sweep) are separate Functions — Options.Functions or Env.AddFunction —
// each its own process pair, invoked from separate goroutines; one
// Function serves one invocation at a time, as one execution environment
// does. Env.InvokeFree sends each invocation to a Function that is free,
// waiting for one when all are busy. Function.Kill ends one abruptly, as
// a crash would.
//
// Every function gets ROTATOR_LEDGER_TABLE (Env.LedgerTable) and
// AWS_ENDPOINT_URL_DYNAMODB (Env.Ledger.URL); Env.Ledger.Client reads the
// ledger. The Envs of one process share one dynalite (SharedLedger), each
// in a table of its own; Options.Ledger names another.
//
// Children get a fixed environment (fake credentials, AWS_ENDPOINT_URL of
// the emulator, AWS_ENDPOINT_URL_DYNAMODB of dynalite, no ~/.aws files), never the caller's, so a local run cannot
// reach a real AWS account. Binaries go to <repo>/.cache/harness/GOOS_GOARCH
// (git-ignored), built with one `go build` under a file lock.
package harness
