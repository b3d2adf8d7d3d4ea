package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/dynalite"
)

// One dynalite (an in-memory DynamoDB by a third party) for the package;
// each function the tests build gets a ledger table of its own.
var ledgerDB struct {
	once   sync.Once
	srv    *dynalite.Server
	err    error
	tables atomic.Int64
}

func TestMain(m *testing.M) {
	code := m.Run()
	if ledgerDB.srv != nil {
		ledgerDB.srv.Close()
	}
	os.Exit(code)
}

// withLedger creates a ledger table and points env (the function's
// environment) and the SDK's DynamoDB endpoint at it.
func withLedger(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	ledgerDB.once.Do(func() { ledgerDB.srv, ledgerDB.err = dynalite.Start(context.Background(), dynalite.Options{}) })
	if ledgerDB.err != nil {
		t.Fatalf("dynalite: %v (run npm ci: it comes from package.json)", ledgerDB.err)
	}
	name := fmt.Sprintf("ledger-%d", ledgerDB.tables.Add(1))
	if err := ledgerDB.srv.CreateLedgerTable(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ledgerDB.srv.URL)
	if env == nil {
		env = map[string]string{}
	}
	env[settings.EnvLedgerTable] = name
	return env
}
