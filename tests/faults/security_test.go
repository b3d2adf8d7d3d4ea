package faults

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

// TestEmulatorLogCannotBeForged: the emulator logs the caller's key
// identifier; a newline in it must not start a forged log line.
func TestEmulatorLogCannotBeForged(t *testing.T) {
	var logs emutest.Buffer
	emu := emutest.Start(t, kmsemu.Options{Log: &logs}, "")
	forged := "alias/x\n2026-01-01T00:00:00.000Z op=RotateKeyOnDemand region=us-east-1 key=victim status=200 code=OK"
	_, err := emu.KMS(region).DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: aws.String(forged)})
	if err == nil {
		t.Fatal("DescribeKey of a malformed alias succeeded")
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	for _, l := range lines {
		if strings.Contains(l, "op=RotateKeyOnDemand") && !strings.Contains(l, "op=DescribeKey") {
			t.Errorf("forged log line: %q", l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `key="alias/x\n`) {
		t.Errorf("want one line with the identifier quoted, got %q", lines)
	}
}
