package dynalite_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/dynalite"
)

const table = "kms-rotator-ledger"

func TestStartListensOnLoopbackAndCloseStopsIt(t *testing.T) {
	begin := time.Now()
	s, err := dynalite.Start(t.Context(), dynalite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dynalite answered %v after Start", time.Since(begin).Round(time.Millisecond))
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil || host != "127.0.0.1" || s.URL != "http://"+s.Addr {
		t.Fatalf("Addr %q, URL %q: want http://127.0.0.1:PORT", s.Addr, s.URL)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("the dynalite process is still running after Close")
	}
	if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Close", s.Addr)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

func TestStartWithoutDynaliteInstalledSaysToRunNpmCI(t *testing.T) {
	_, err := dynalite.Start(t.Context(), dynalite.Options{Root: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "npm ci") {
		t.Fatalf("Start in a directory without node_modules: error %v, want one saying to run npm ci", err)
	}
}

func TestLedgerTable(t *testing.T) {
	s := dynalite.StartTB(t)
	ctx := t.Context()
	db := s.Client(ctx)
	if err := s.CreateLedgerTable(ctx, table); err != nil {
		t.Fatal(err)
	}

	t.Run("is ACTIVE with the settings key schema and on-demand capacity", func(t *testing.T) {
		out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			t.Fatal(err)
		}
		tb := out.Table
		if tb.TableStatus != types.TableStatusActive {
			t.Errorf("TableStatus %s, want ACTIVE", tb.TableStatus)
		}
		keys := map[string]types.KeyType{}
		for _, k := range tb.KeySchema {
			keys[aws.ToString(k.AttributeName)] = k.KeyType
		}
		if len(keys) != 2 || keys[settings.LedgerPartitionKey] != types.KeyTypeHash || keys[settings.LedgerSortKey] != types.KeyTypeRange {
			t.Errorf("KeySchema %v, want %s HASH and %s RANGE", keys, settings.LedgerPartitionKey, settings.LedgerSortKey)
		}
		for _, a := range tb.AttributeDefinitions {
			if a.AttributeType != types.ScalarAttributeTypeS {
				t.Errorf("attribute %s is %s, want S", aws.ToString(a.AttributeName), a.AttributeType)
			}
		}
		if tb.BillingModeSummary == nil || tb.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
			t.Errorf("BillingModeSummary %+v, want PAY_PER_REQUEST", tb.BillingModeSummary)
		}
	})

	t.Run("a second CreateLedgerTable of the same name fails with ResourceInUseException", func(t *testing.T) {
		err := s.CreateLedgerTable(ctx, table)
		var inUse *types.ResourceInUseException
		if !errors.As(err, &inUse) {
			t.Fatalf("error %v, want ResourceInUseException", err)
		}
	})

	key := map[string]types.AttributeValue{
		settings.LedgerPartitionKey: &types.AttributeValueMemberS{Value: "key#arn:aws:kms:us-east-1:012345678912:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
		settings.LedgerSortKey:      &types.AttributeValueMemberS{Value: "claim#2026-12-07T05:00:00Z#run-1"},
	}
	claim := func(run string) *dynamodb.PutItemInput {
		item := map[string]types.AttributeValue{"runId": &types.AttributeValueMemberS{Value: run}}
		for k, v := range key {
			item[k] = v
		}
		return &dynamodb.PutItemInput{
			TableName:           aws.String(table),
			Item:                item,
			ConditionExpression: aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: map[string]string{
				"#pk": settings.LedgerPartitionKey,
			},
		}
	}

	t.Run("a conditional claim is written once; the second fails with ConditionalCheckFailedException", func(t *testing.T) {
		if _, err := db.PutItem(ctx, claim("run-1")); err != nil {
			t.Fatalf("first claim: %v", err)
		}
		_, err := db.PutItem(ctx, claim("run-2"))
		var lost *types.ConditionalCheckFailedException
		if !errors.As(err, &lost) {
			t.Fatalf("second claim: error %v, want ConditionalCheckFailedException", err)
		}
	})

	t.Run("a consistent GetItem reads the first claim, not the refused one", func(t *testing.T) {
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		run, ok := out.Item["runId"].(*types.AttributeValueMemberS)
		if !ok || run.Value != "run-1" {
			t.Fatalf("item %v, want runId run-1", out.Item)
		}
	})

	t.Run("a Query on the key's claims finds the one claim", func(t *testing.T) {
		out, err := db.Query(ctx, &dynamodb.QueryInput{
			TableName:              aws.String(table),
			KeyConditionExpression: aws.String("#pk = :pk AND begins_with(#sk, :claim)"),
			ExpressionAttributeNames: map[string]string{
				"#pk": settings.LedgerPartitionKey, "#sk": settings.LedgerSortKey,
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk": key[settings.LedgerPartitionKey], ":claim": &types.AttributeValueMemberS{Value: "claim#"},
			},
			ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			t.Fatal(err)
		}
		if out.Count != 1 {
			t.Fatalf("Count %d, want 1", out.Count)
		}
	})

	t.Run("CountClaims counts claim records only, across pages", func(t *testing.T) {
		put := func(pk, sk string) {
			t.Helper()
			item := map[string]types.AttributeValue{
				settings.LedgerPartitionKey: &types.AttributeValueMemberS{Value: pk},
				settings.LedgerSortKey:      &types.AttributeValueMemberS{Value: sk},
				// Large enough that a Scan page (1 MB) cannot hold all.
				"pad": &types.AttributeValueMemberS{Value: strings.Repeat("x", 300<<10)},
			}
			if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 5 {
			put(fmt.Sprintf("key#k%d", i), fmt.Sprintf("%s2026-12-07T05:00:00.000Z#run-%d", dynalite.ClaimPrefix, i))
		}
		put("key#k0", "head")
		put("request#r", "request")
		// The claim of the conditional-write subtest makes six.
		if n, err := s.CountClaims(ctx, table); err != nil || n != 6 {
			t.Fatalf("CountClaims = %d, %v; want 6", n, err)
		}
	})

	// CreateLedgerTable leaves TTL off because dynalite cannot turn it on;
	// should a later dynalite serve UpdateTimeToLive, this fails, and
	// CreateLedgerTable should enable TTL as the stack does.
	t.Run("dynalite answers UpdateTimeToLive with UnknownOperationException", func(t *testing.T) {
		_, err := db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName: aws.String(table),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{
				AttributeName: aws.String(settings.LedgerTTLAttribute), Enabled: aws.Bool(true),
			},
		})
		var api smithy.APIError
		if !errors.As(err, &api) || api.ErrorCode() != "UnknownOperationException" {
			t.Fatalf("UpdateTimeToLive: error %v, want UnknownOperationException (if dynalite serves it now, enable TTL in CreateLedgerTable)", err)
		}
	})
}

// TestDynaliteDiesWithItsParent kills a process that started dynalite
// without letting it Close (as go test's timeout or a SIGKILL would) and
// checks that dynalite goes too, instead of holding its port for ever.
func TestDynaliteDiesWithItsParent(t *testing.T) {
	if os.Getenv("DYNALITE_TEST_CHILD") == "1" {
		s, err := dynalite.Start(t.Context(), dynalite.Options{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("addr:", s.Addr)
		select {} // until killed
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDynaliteDiesWithItsParent$")
	cmd.Env = append(os.Environ(), "DYNALITE_TEST_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var addr string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "addr: "); ok {
			addr = a
			break
		}
		t.Log(sc.Text())
	}
	if addr == "" {
		_ = cmd.Process.Kill()
		t.Fatal("the child did not start dynalite")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("dynalite still listens on %s 10 s after the process that started it was killed", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
