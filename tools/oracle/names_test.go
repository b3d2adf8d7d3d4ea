package oracle

import (
	"testing"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// TestNamesAreTheFunctions pins the contract's names the oracle writes
// out to the ones the function emits (lambda/settings): the two are
// copies on purpose, so a rename fails here instead of being followed.
// The reasons are pinned by tests/doccheck.
func TestNamesAreTheFunctions(t *testing.T) {
	for mine, theirs := range map[string]string{
		ResultEventSource: settings.ResultEventSource, ResultEventDetailType: settings.ResultEventDetailType,
		dimMode: settings.DimMode, dimReason: settings.DimReason, dimAccount: settings.DimAccount,
	} {
		if mine != theirs {
			t.Errorf("the oracle checks %q, the function emits %q", mine, theirs)
		}
	}
	def := settings.DefaultConfig()
	if Documented.Reserve != def.Reserve || Documented.Namespace != def.MetricsNamespace {
		t.Errorf("documented reserve %d, namespace %q; the function's defaults %d, %q", Documented.Reserve, Documented.Namespace, def.Reserve, def.MetricsNamespace)
	}
	metrics := []string{settings.MetricKeysCandidate, settings.MetricKeysRotated, settings.MetricKeysWouldRotate, settings.MetricKeysSkipped,
		settings.MetricKeysFailed, settings.MetricKeysDeferred, settings.MetricRunsCompleted, settings.MetricKeysOverdue,
		settings.MetricKeysOverdueAction, settings.MetricKeysOverdueByPolicy, settings.MetricKeysBudgetLow, settings.MetricKeysBudgetExhausted,
		settings.MetricMinOnDemandRemaining, settings.MetricRotationsStuck, settings.MetricMaxMaterialAgeDays,
		settings.MetricKeysDueSoon, settings.MetricMaterialExpiringSoon, settings.MetricEvidenceFailed}
	for i, name := range checkedMetrics {
		if i >= len(metrics) || metrics[i] != name {
			t.Fatalf("the oracle checks the metrics %v, the function emits %v", checkedMetrics, metrics)
		}
	}
}
