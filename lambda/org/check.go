package org

import (
	"context"
	"fmt"
	"slices"

	"github.com/kms-rotator/kms-rotator/lambda/request"
)

// Check refuses a key request that names a member account — its target, or
// an incident key's ARN — that the last targets run did not resolve, before
// the function assumes a role there: the member role exists where the
// organization sweep targets, and a request must not reach further. The
// function's own account needs no role and is always accepted. It fails
// closed when the record cannot be read.
func (s *Service) Check(ctx context.Context, req request.Request, inv Invocation) error {
	type named struct{ field, account, region string }
	var names []named
	if t := req.Target; t != nil && t.Account != inv.Scope.Account {
		names = append(names, named{"target.account", t.Account, t.Region})
	}
	for i, k := range req.Keys {
		if k.Account != "" && k.Account != inv.Scope.Account && (req.Target == nil || k.Account != req.Target.Account) &&
			!slices.ContainsFunc(names, func(n named) bool { return n.account == k.Account }) {
			names = append(names, named{fmt.Sprintf("keys[%d]", i), k.Account, ""})
		}
	}
	if len(names) == 0 {
		return nil
	}
	if s.c.Ledger == nil {
		return fmt.Errorf("%s: account %s cannot be checked against the last targets run: no ledger", names[0].field, names[0].account)
	}
	res, err := s.c.Ledger.Targets(ctx)
	if err != nil {
		s.log.Error("targets record not read; request refused", "requestId", inv.RequestID, "error", err.Error())
		return fmt.Errorf("%s: account %s cannot be checked against the last targets run; nothing was touched: %w", names[0].field, names[0].account, err)
	}
	for _, n := range names {
		var msg string
		switch {
		case res == nil:
			msg = fmt.Sprintf("account %s: no targets run is recorded yet, and only accounts a targets run resolved may be named "+
				"(the organization sweep's first state records them; start it, or invoke {\"mode\":\"targets\",…})", n.account)
		case !res.Covers(n.account, ""):
			msg = fmt.Sprintf("account %s was not resolved by the last targets run (%s): it is not among the accounts orgTargets covers, "+
				"so it has no member role this function may use", n.account, res.RunID)
		case n.region != "" && !res.Covers(n.account, n.region):
			n.field = "target.region"
			msg = fmt.Sprintf("Region %s of account %s was not resolved by the last targets run (%s, Regions %v)", n.region, n.account, res.RunID, res.Regions)
		default:
			continue
		}
		s.log.Error("request names an account outside the organization sweep; refused", "requestId", inv.RequestID, "field", n.field, "account", n.account)
		return &request.ValidationError{Field: n.field, Msg: msg}
	}
	return nil
}
