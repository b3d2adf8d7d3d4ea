package rotator

import (
	"strings"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

var now = time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)

func ago(d int) time.Time { return now.Add(-days(d)) }

// eligible is a customer managed symmetric key, enabled, created 400 days ago.
func eligible() *Metadata {
	return &Metadata{KeyManager: "CUSTOMER", KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT",
		Origin: "AWS_KMS", KeyState: "Enabled", CreatedAt: ago(400)}
}

func TestDecide(t *testing.T) {
	cfg := settings.DefaultConfig() // interval 90, reserve 2, cooldown 1 h, grace 7 days
	cfg.OnDemandLimit = 10          // small numbers read better below
	with := func(f func(m *Metadata)) *Metadata { m := eligible(); f(m); return m }
	notInProgress := &Status{}
	started := ago(0)
	inProgress := &Status{OnDemandStart: &started}
	startedHoursAgo := now.Add(-2 * time.Hour)
	inProgressLong := &Status{OnDemandStart: &startedHoursAgo}
	autoIn := func(d time.Duration) *Status { t := now.Add(d); return &Status{NextAutomatic: &t} }
	type tc struct {
		name string
		f    Facts
		want Decision
	}
	base := func(mode request.Mode) Facts {
		return Facts{Asked: Asked{Mode: mode}, Tags: Tags{TagsKnown: true, OptedIn: true, IntervalDays: 90}, Meta: eligible()}
	}
	set := func(f Facts, fn func(*Facts)) Facts { fn(&f); return f }
	final := func(o Outcome, r Reason) Decision { return Decision{Action: Done, Outcome: o, Reason: r} }
	var cases []tc
	for _, mode := range []request.Mode{request.ModeScheduled, request.ModePlan, request.ModeReport, request.ModeIncident} {
		m := string(mode) + "/"
		b := base(mode)
		cases = append(cases,
			tc{m + "no metadata → fetch DescribeKey", set(b, func(f *Facts) { f.Meta = nil; f.TagsKnown = false }), Decision{Action: FetchMetadata}},
			tc{m + "tags unknown → fetch tags", set(b, func(f *Facts) { f.TagsKnown = false }), Decision{Action: FetchTags}},
			tc{m + "not opted in → skipped not-opted-in", set(b, func(f *Facts) { f.OptedIn = false }), final(Skipped, ReasonNotOptedIn)},
			tc{m + "AWS managed → skipped aws-managed", set(b, func(f *Facts) { f.Meta = with(func(m *Metadata) { m.KeyManager = "AWS" }) }), final(Skipped, ReasonAWSManaged)},
			tc{m + "asymmetric → skipped unsupported-key-spec", set(b, func(f *Facts) {
				f.Meta = with(func(m *Metadata) { m.KeySpec = "RSA_2048"; m.KeyUsage = "SIGN_VERIFY" })
			}), final(Skipped, ReasonUnsupportedKeySpec)},
			tc{m + "HMAC → skipped unsupported-key-spec", set(b, func(f *Facts) {
				f.Meta = with(func(m *Metadata) { m.KeySpec = "HMAC_256"; m.KeyUsage = "GENERATE_VERIFY_MAC" })
			}), final(Skipped, ReasonUnsupportedKeySpec)},
			tc{m + "symmetric but not ENCRYPT_DECRYPT → skipped unsupported-key-spec", set(b, func(f *Facts) {
				f.Meta = with(func(m *Metadata) { m.KeyUsage = "GENERATE_VERIFY_MAC" })
			}), final(Skipped, ReasonUnsupportedKeySpec)},
			tc{m + "imported material, history unknown → fetch ListKeyRotations (with all key material)", set(b, func(f *Facts) { f.Meta = with(func(m *Metadata) { m.Origin = "EXTERNAL" }) }), Decision{Action: FetchHistory}},
			tc{m + "imported material, nothing staged → skipped material-not-staged", set(b, func(f *Facts) {
				f.Meta = with(func(m *Metadata) { m.Origin = "EXTERNAL" })
				f.History = &History{Newest: ago(200), CurrentMaterial: "m1"}
			}), final(Skipped, ReasonMaterialNotStaged)},
			tc{m + "imported multi-Region material waiting for a replica → skipped material-pending-replica-import", set(b, func(f *Facts) {
				f.Meta = with(func(m *Metadata) { m.Origin = "EXTERNAL" })
				f.History = &History{Newest: ago(200), PendingReplicaImport: true}
			}), final(Skipped, ReasonMaterialPendingReplicaImport)},
			tc{m + "CloudHSM store → skipped custom-key-store", set(b, func(f *Facts) { f.Meta = with(func(m *Metadata) { m.Origin = "AWS_CLOUDHSM" }) }), final(Skipped, ReasonCustomKeyStore)},
			tc{m + "external key store → skipped custom-key-store", set(b, func(f *Facts) { f.Meta = with(func(m *Metadata) { m.Origin = "EXTERNAL_KEY_STORE" }) }), final(Skipped, ReasonCustomKeyStore)},
			tc{m + "replica → skipped multi-region-replica", set(b, func(f *Facts) {
				f.Meta = with(func(m *Metadata) { m.Replica = true; m.PrimaryARN = "arn:aws:kms:us-west-2:111122223333:key/mrk-1" })
			}), final(Skipped, ReasonMultiRegionReplica)},
			tc{m + "disabled → skipped key-not-enabled", set(b, func(f *Facts) { f.Meta = with(func(m *Metadata) { m.KeyState = "Disabled" }) }), final(Skipped, ReasonKeyNotEnabled)},
			tc{m + "pending deletion → skipped key-not-enabled", set(b, func(f *Facts) { f.Meta = with(func(m *Metadata) { m.KeyState = "PendingDeletion" }) }), final(Skipped, ReasonKeyNotEnabled)},
			tc{m + "aws-managed wins over not opted in (no tag could help)", set(b, func(f *Facts) {
				f.OptedIn = false
				f.Meta = with(func(m *Metadata) { m.KeyManager = "AWS" })
			}), final(Skipped, ReasonAWSManaged)},
			tc{m + "tags unknown, asymmetric → skipped unsupported-key-spec without reading tags", set(b, func(f *Facts) {
				f.TagsKnown = false
				f.Meta = with(func(m *Metadata) { m.KeySpec = "RSA_2048"; m.KeyUsage = "SIGN_VERIFY" })
			}), final(Skipped, ReasonUnsupportedKeySpec)},
			tc{m + "replica not opted in → skipped multi-region-replica", set(b, func(f *Facts) {
				f.OptedIn = false
				f.Meta = with(func(m *Metadata) { m.Replica = true })
			}), final(Skipped, ReasonMultiRegionReplica)},
			tc{m + "not opted in wins over key-not-enabled", set(b, func(f *Facts) {
				f.OptedIn = false
				f.Meta = with(func(m *Metadata) { m.KeyState = "Disabled" })
			}), final(Skipped, ReasonNotOptedIn)},
			tc{m + "eligible, history unknown → fetch ListKeyRotations", b, Decision{Action: FetchHistory}},
		)
	}
	// Scheduled-like modes: interval and reserve apply.
	for _, mode := range []request.Mode{request.ModeScheduled, request.ModePlan, request.ModeReport} {
		m := string(mode) + "/"
		b := base(mode)
		dry := mode != request.ModeScheduled
		b.DryRun = dry
		due := Decision{Action: Rotate}
		// Due, status unknown: a real run hands the key to the rotation
		// stage (which reads it right before rotating); a dry run reads it.
		dueNoStatus := Decision{Action: Rotate}
		if dry {
			due = final(WouldRotate, ReasonNone)
			dueNoStatus = Decision{Action: FetchStatus}
		}
		cases = append(cases,
			tc{m + "used == limit → skipped budget-exhausted", set(b, func(f *Facts) { f.History = &History{OnDemand: 10, Newest: ago(200)}; f.Status = notInProgress }), final(Skipped, ReasonBudgetExhausted)},
			tc{m + "used > limit → skipped budget-exhausted", set(b, func(f *Facts) { f.History = &History{OnDemand: 25, Newest: ago(200)}; f.Status = notInProgress }), final(Skipped, ReasonBudgetExhausted)},
			tc{m + "remaining == reserve, status unknown → fetch status first (a rotation in progress would change the count)", set(b, func(f *Facts) { f.History = &History{OnDemand: 8, Newest: ago(1)} }), Decision{Action: FetchStatus}},
			tc{m + "KMS answered LimitExceededException → skipped budget-exhausted", set(b, func(f *Facts) {
				f.History = &History{OnDemand: 3, Newest: ago(200)}
				f.Status = notInProgress
				f.LimitReached = true
			}), final(Skipped, ReasonBudgetExhausted)},
			tc{m + "7 used + 1 in progress → remaining == reserve → skipped budget-reserved (one count everywhere)", set(b, func(f *Facts) {
				f.History = &History{OnDemand: 7, Newest: ago(200)}
				f.Status = inProgressLong
			}), final(Skipped, ReasonBudgetReserved)},
			tc{m + "due, automatic rotation in 3 days → skipped automatic-rotation-soon", set(b, func(f *Facts) {
				f.History = &History{OnDemand: 1, Newest: ago(100)}
				f.Status = autoIn(3 * 24 * time.Hour)
			}), final(Skipped, ReasonAutomaticRotationSoon)},
			tc{m + "due, automatic rotation date 2 days past → rotate (the automatic rotation was missed)", set(b, func(f *Facts) {
				f.History = &History{OnDemand: 1, Newest: ago(100)}
				f.Status = autoIn(-2 * 24 * time.Hour)
			}), due},
			tc{m + "due, automatic rotation in 8 days → rotate (beyond the grace)", set(b, func(f *Facts) {
				f.History = &History{OnDemand: 1, Newest: ago(100)}
				f.Status = autoIn(8 * 24 * time.Hour)
			}), due},
			tc{m + "remaining == reserve → skipped budget-reserved", set(b, func(f *Facts) { f.History = &History{OnDemand: 8, Newest: ago(200)}; f.Status = notInProgress }), final(Skipped, ReasonBudgetReserved)},
			tc{m + "remaining == reserve+1, due → fetch status", set(b, func(f *Facts) { f.History = &History{OnDemand: 7, Newest: ago(200)} }), Decision{Action: FetchStatus}},
			tc{m + "budget-reserved wins over not-due (table order)", set(b, func(f *Facts) { f.History = &History{OnDemand: 9, Newest: ago(1)}; f.Status = notInProgress }), final(Skipped, ReasonBudgetReserved)},
			tc{m + "rotated 89 days ago → skipped not-due", set(b, func(f *Facts) { f.History = &History{OnDemand: 1, Newest: ago(89)} }), final(Skipped, ReasonNotDue)},
			tc{m + "one second before the interval → skipped not-due", set(b, func(f *Facts) { f.History = &History{Newest: ago(90).Add(time.Second)} }), final(Skipped, ReasonNotDue)},
			tc{m + "exactly at the interval → due", set(b, func(f *Facts) { f.History = &History{Newest: ago(90)} }), dueNoStatus},
			tc{m + "never rotated, created 89 days ago → skipped not-due", set(b, func(f *Facts) {
				f.Meta = with(func(m *Metadata) { m.CreatedAt = ago(89) })
				f.History = &History{}
			}), final(Skipped, ReasonNotDue)},
			tc{m + "never rotated, created 90 days ago → due", set(b, func(f *Facts) {
				f.Meta = with(func(m *Metadata) { m.CreatedAt = ago(90) })
				f.History = &History{}
			}), dueNoStatus},
			tc{m + "automatic rotation counts for age → skipped not-due", set(b, func(f *Facts) { f.History = &History{OnDemand: 3, Newest: ago(10)} }), final(Skipped, ReasonNotDue)},
			tc{m + "tag override 30 days, rotated 31 days ago → due", set(b, func(f *Facts) {
				f.IntervalDays = 30
				f.History = &History{Newest: ago(31)}
			}), dueNoStatus},
			tc{m + "tag override 365 days, rotated 200 days ago → skipped not-due", set(b, func(f *Facts) {
				f.IntervalDays = 365
				f.History = &History{Newest: ago(200)}
			}), final(Skipped, ReasonNotDue)},
			tc{m + "invalid interval tag → failed error", set(b, func(f *Facts) { f.IntervalErr = "bad tag" }),
				Decision{Action: Done, Outcome: Failed, Reason: ReasonError, Detail: "bad tag"}},
			tc{m + "due, rotation in progress → skipped rotation-in-progress", set(b, func(f *Facts) {
				f.History = &History{Newest: ago(100)}
				f.Status = inProgress
			}), final(Skipped, ReasonRotationInProgress)},
			tc{m + "imported material staged, due → decided like any other key", set(b, func(f *Facts) {
				f.Meta = with(func(m *Metadata) { m.Origin = "EXTERNAL" })
				f.History = &History{OnDemand: 1, Newest: ago(100), Staged: "m2"}
				f.Status = notInProgress
			}), due},
			tc{m + "imported material staged, not due → skipped not-due", set(b, func(f *Facts) {
				f.Meta = with(func(m *Metadata) { m.Origin = "EXTERNAL" })
				f.History = &History{OnDemand: 1, Newest: ago(10), Staged: "m2"}
			}), final(Skipped, ReasonNotDue)},
			tc{m + "due, nothing in progress → rotate (or would-rotate)", set(b, func(f *Facts) {
				f.History = &History{OnDemand: 7, Newest: ago(100)}
				f.Status = notInProgress
			}), due},
		)
	}
	// Incident mode: no interval, the reserve may be used.
	b := base(request.ModeIncident)
	cases = append(cases,
		tc{"incident/rotated yesterday → rotate (interval ignored; the rotation stage reads the status)", set(b, func(f *Facts) { f.History = &History{Newest: ago(1)} }), Decision{Action: Rotate}},
		tc{"incident/remaining == reserve → rotate (reserve usable)", set(b, func(f *Facts) { f.History = &History{OnDemand: 8, Newest: ago(1)} }), Decision{Action: Rotate}},
		tc{"incident/dry run, status unknown → fetch status", set(b, func(f *Facts) { f.DryRun = true; f.History = &History{OnDemand: 1, Newest: ago(1)} }), Decision{Action: FetchStatus}},
		tc{"incident/remaining == 1 → rotate", set(b, func(f *Facts) {
			f.History = &History{OnDemand: 9, Newest: ago(1)}
			f.Status = notInProgress
		}), Decision{Action: Rotate}},
		tc{"incident/invalid interval tag ignored → rotate", set(b, func(f *Facts) {
			f.IntervalErr = "bad tag"
			f.History = &History{}
			f.Status = notInProgress
		}), Decision{Action: Rotate}},
		tc{"incident/used == limit → rotate (KMS judges the limit)", set(b, func(f *Facts) { f.History = &History{OnDemand: 10, Newest: ago(200)} }), Decision{Action: Rotate}},
		tc{"incident/used > local limit, nothing in progress → rotate", set(b, func(f *Facts) {
			f.History = &History{OnDemand: 12, Newest: ago(200)}
			f.Status = notInProgress
		}), Decision{Action: Rotate}},
		tc{"incident/in progress for 2 h (beyond the cooldown) → skipped rotation-in-progress", set(b, func(f *Facts) {
			f.History = &History{}
			f.Status = inProgressLong
		}), final(Skipped, ReasonRotationInProgress)},
		tc{"incident/in progress since now → skipped recently-rotated", set(b, func(f *Facts) {
			f.History = &History{}
			f.Status = inProgress
		}), final(Skipped, ReasonRecentlyRotated)},
		tc{"incident/on-demand rotation completed 59 min ago → skipped recently-rotated", set(b, func(f *Facts) {
			f.History = &History{OnDemand: 1, Newest: now.Add(-59 * time.Minute), NewestOnDemand: now.Add(-59 * time.Minute)}
			f.Status = notInProgress
		}), final(Skipped, ReasonRecentlyRotated)},
		tc{"incident/on-demand rotation 61 min ago → rotate (cooldown over)", set(b, func(f *Facts) {
			f.History = &History{OnDemand: 1, Newest: now.Add(-61 * time.Minute), NewestOnDemand: now.Add(-61 * time.Minute)}
			f.Status = notInProgress
		}), Decision{Action: Rotate}},
		tc{"incident/automatic rotation 10 min ago → rotate (the cooldown counts on-demand rotations)", set(b, func(f *Facts) {
			f.History = &History{OnDemand: 1, Newest: now.Add(-10 * time.Minute), NewestOnDemand: ago(100)}
			f.Status = notInProgress
		}), Decision{Action: Rotate}},
		tc{"incident/force inside the cooldown → rotate", set(b, func(f *Facts) {
			f.Force = true
			f.History = &History{OnDemand: 1, Newest: now.Add(-5 * time.Minute), NewestOnDemand: now.Add(-5 * time.Minute)}
			f.Status = notInProgress
		}), Decision{Action: Rotate}},
		tc{"incident/force while in progress → skipped rotation-in-progress", set(b, func(f *Facts) {
			f.Force = true
			f.History = &History{}
			f.Status = inProgress
		}), final(Skipped, ReasonRotationInProgress)},
		tc{"incident/automatic rotation in 3 days → rotate (no grace for incidents)", set(b, func(f *Facts) {
			f.History = &History{OnDemand: 1, Newest: ago(100), NewestOnDemand: ago(100)}
			f.Status = autoIn(3 * 24 * time.Hour)
		}), Decision{Action: Rotate}},
		tc{"incident/dry run → would-rotate", set(b, func(f *Facts) {
			f.DryRun = true
			f.History = &History{}
			f.Status = notInProgress
		}), final(WouldRotate, ReasonNone)},
	)
	// The inventory (report mode) reads the status of every key whose
	// history it read, before judging the budget: a rotation in progress is
	// already spent.
	r := set(base(request.ModeReport), func(f *Facts) { f.DryRun = true })
	cases = append(cases,
		tc{"report/history read, status unknown → fetch status first", set(r, func(f *Facts) { f.History = &History{OnDemand: 1, Newest: ago(10)} }), Decision{Action: FetchStatus}},
		tc{"report/history read, status read, usage asked for and unknown → fetch GetKeyLastUsage", set(r, func(f *Facts) {
			f.History = &History{OnDemand: 1, Newest: ago(10)}
			f.Status = notInProgress
			f.WantUsage = true
		}), Decision{Action: FetchUsage}},
		tc{"report/history read, status read, usage not asked for → decided without GetKeyLastUsage (5 per second)", set(r, func(f *Facts) {
			f.History = &History{OnDemand: 1, Newest: ago(10)}
			f.Status = notInProgress
		}), final(Skipped, ReasonNotDue)},
		tc{"report/9 used + 1 in progress → skipped budget-exhausted", set(r, func(f *Facts) {
			f.History = &History{OnDemand: 9, Newest: ago(200)}
			f.Status = inProgress
		}), final(Skipped, ReasonBudgetExhausted)},
	)
	for _, c := range cases {
		if c.f.Mode == request.ModeReport && c.f.History != nil && c.f.Usage == nil && !strings.HasPrefix(c.name, "report/history read") && !strings.Contains(c.name, "status unknown") {
			// The inventory also reads when each key was last used.
			c.f.Usage = &Usage{TrackingStart: ago(1000)}
		}
		if c.f.Mode == request.ModeReport && c.f.History != nil && c.f.Status == nil && !strings.HasPrefix(c.name, "report/history read") && !strings.Contains(c.name, "status unknown") {
			// The shared rows above describe a key with nothing in progress.
			c.f.Status = notInProgress
			if c.want.Action == FetchStatus {
				c.want = final(WouldRotate, ReasonNone)
			}
		}
		t.Run(c.name, func(t *testing.T) {
			got := Decide(c.f, now, cfg)
			if got != c.want {
				t.Fatalf("Decide = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestDecideIdle(t *testing.T) {
	cfg := DefaultConfigForTest()
	cfg.SkipIdle = true
	at := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	day := 24 * time.Hour
	base := Facts{Asked: Asked{Mode: request.ModeScheduled}, Tags: Tags{TagsKnown: true, OptedIn: true, IntervalDays: 90}, Meta: eligible(),
		History: &History{OnDemand: 1, Newest: ago(100), NewestOnDemand: ago(100)}, Status: &Status{}}
	for _, tc := range []struct {
		name  string
		usage *Usage
		mode  request.Mode
		want  Decision
	}{
		{"usage unknown → fetch GetKeyLastUsage", nil, request.ModeScheduled, Decision{Action: FetchUsage}},
		{"never used since the rotation → skipped idle", &Usage{TrackingStart: ago(300)}, request.ModeScheduled, Decision{Action: Done, Outcome: Skipped, Reason: ReasonIdle}},
		{"last used before the rotation → skipped idle", &Usage{LastUsed: at(150 * day), TrackingStart: ago(300)}, request.ModeScheduled, Decision{Action: Done, Outcome: Skipped, Reason: ReasonIdle}},
		{"used since the rotation → rotate", &Usage{LastUsed: at(2 * day), TrackingStart: ago(300)}, request.ModeScheduled, Decision{Action: Rotate}},
		{"tracking began after the rotation → rotate (use unknown)", &Usage{TrackingStart: ago(50)}, request.ModeScheduled, Decision{Action: Rotate}},
		{"incident → rotate whatever the use", &Usage{TrackingStart: ago(300)}, request.ModeIncident, Decision{Action: Rotate}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base
			f.Mode, f.Usage = tc.mode, tc.usage
			if got := Decide(f, now, cfg); got != tc.want {
				t.Fatalf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
	t.Run("rotated less than a day ago → not idle (KMS reports use up to a day late)", func(t *testing.T) {
		f := base
		f.Usage = &Usage{TrackingStart: ago(300)}
		f.History = &History{OnDemand: 1, Newest: now.Add(-20 * time.Hour)}
		if f.idle(now) {
			t.Fatal("idle within a day of the rotation")
		}
	})
}

func DefaultConfigForTest() settings.Config { return settings.DefaultConfig() }

func TestDecideReserveZero(t *testing.T) {
	cfg := settings.DefaultConfig()
	cfg.OnDemandLimit, cfg.Reserve = 10, 0
	f := Facts{Asked: Asked{Mode: request.ModeScheduled}, Tags: Tags{TagsKnown: true, OptedIn: true, IntervalDays: 90}, Meta: eligible(),
		History: &History{OnDemand: 9, Newest: ago(100)}, Status: &Status{}}
	for _, tc := range []struct {
		name string
		used int
		want Decision
	}{
		{"one left with no reserve → rotate", 9, Decision{Action: Rotate}},
		{"none left → budget-exhausted", 10, Decision{Action: Done, Outcome: Skipped, Reason: ReasonBudgetExhausted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.History.OnDemand = tc.used
			if got := Decide(f, now, cfg); got != tc.want {
				t.Fatalf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFactsBudget(t *testing.T) {
	started := ago(0)
	at := now
	for _, tc := range []struct {
		name                 string
		f                    Facts
		wantUsed, wantRemain int
		wantKnown            bool
	}{
		{"history unknown → unknown", Facts{}, 0, 0, false},
		{"none used → all remain", Facts{History: &History{}}, 0, 10, true},
		{"9 used → 1 remains", Facts{History: &History{OnDemand: 9}}, 9, 1, true},
		{"10 used → none remain", Facts{History: &History{OnDemand: 10}}, 10, 0, true},
		{"12 used → none remain, not negative", Facts{History: &History{OnDemand: 12}}, 12, 0, true},
		{"one in progress counts as spent", Facts{History: &History{OnDemand: 3}, Status: &Status{OnDemandStart: &started}}, 4, 6, true},
		{"this run's rotation counts as spent", Facts{History: &History{OnDemand: 3}, RotatedAt: &at}, 4, 6, true},
		{"this run's rotation seen in progress counts once", Facts{History: &History{OnDemand: 3}, RotatedAt: &at, Status: &Status{OnDemandStart: &started}}, 4, 6, true},
		{"KMS's LimitExceededException → none remain", Facts{History: &History{OnDemand: 3}, LimitReached: true}, 3, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			used, remaining, known := tc.f.Budget(10)
			if used != tc.wantUsed || remaining != tc.wantRemain || known != tc.wantKnown {
				t.Fatalf("Budget = %d, %d, %v; want %d, %d, %v", used, remaining, known, tc.wantUsed, tc.wantRemain, tc.wantKnown)
			}
		})
	}
}
