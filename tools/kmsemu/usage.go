package kmsemu

import "time"

// UsageTrackingBegan is when KMS began recording the last cryptographic use
// of keys: GetKeyLastUsage was released on 2026-04-27
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_GetKeyLastUsage.html).
// A key's TrackingStartDate is this or its creation date, whichever is later,
// unless its fleet entry sets trackingStartedDaysAgo.
var UsageTrackingBegan = time.Date(2026, 4, 27, 0, 0, 0, 0, time.UTC)

// lastUse is the last successful cryptographic operation with a key.
type lastUse struct {
	at        time.Time
	op        string // Encrypt, Decrypt, …
	requestID string
	eventID   string // the CloudTrail event ID KMS would log
}

// recordUse notes a successful cryptographic operation with k. Each key of a
// multi-Region set keeps its own (GetKeyLastUsage: "primary and replica keys
// track last usage independently").
func (s *Server) recordUse(c *call, k *key) {
	k.used = &lastUse{at: c.now, op: c.op, requestID: c.requestID, eventID: uuidFrom(s.idRNG)}
}

func trackingStart(k *key) time.Time {
	t := k.trackingStart
	if t.IsZero() {
		t = UsageTrackingBegan
		if k.created.After(t) {
			t = k.created
		}
	}
	return t
}

// GetKeyLastUsage: https://docs.aws.amazon.com/kms/latest/APIReference/API_GetKeyLastUsage.html
// Key ID or key ARN; any key state. KeyLastUsage is an empty object when the
// key has not been used since tracking began.
func (s *Server) getKeyLastUsage(c *call, body []byte) (any, *apiError) {
	var in keyIDInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{})
	if err != nil {
		return nil, err
	}
	type usage struct {
		CloudTrailEventID string   `json:"CloudTrailEventId,omitempty"`
		KmsRequestID      string   `json:"KmsRequestId,omitempty"`
		Operation         string   `json:"Operation,omitempty"`
		Timestamp         *float64 `json:"Timestamp,omitempty"`
	}
	out := struct {
		KeyID             string   `json:"KeyId"`
		KeyCreationDate   *float64 `json:"KeyCreationDate"`
		TrackingStartDate *float64 `json:"TrackingStartDate"`
		KeyLastUsage      usage    `json:"KeyLastUsage"`
	}{KeyID: k.id, KeyCreationDate: epoch(k.created), TrackingStartDate: epoch(trackingStart(k))}
	if u := k.used; u != nil {
		out.KeyLastUsage = usage{u.eventID, u.requestID, u.op, epoch(u.at)}
	}
	return out, nil
}
