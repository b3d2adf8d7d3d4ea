package rotator

import (
	"encoding/hex"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// packedID is a KMS key ID in 17 bytes instead of a 36-character string: a
// UUID (1234abcd-12ab-34cd-56ef-1234567890ab) or a multi-Region key ID
// (mrk- and 32 hex digits)
// (https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#key-id-key-id).
// A run keeps one per key of a large fleet (its alias, its place for the
// continuation cursor), so the size matters. Packed IDs sort like the
// strings they stand for: hex digits keep their byte order, and "mrk-"
// sorts after every hex digit.
type packedID struct {
	mrk bool
	b   [16]byte
}

// packID packs id; ok is false for a string of another form.
func packID(id string) (p packedID, ok bool) {
	var h string
	switch {
	case len(id) == 36 && id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-':
		h = id[:8] + id[9:13] + id[14:18] + id[19:23] + id[24:]
	case len(id) == 36 && strings.HasPrefix(id, "mrk-"):
		h, p.mrk = id[4:], true
	default:
		return packedID{}, false
	}
	if strings.ToLower(h) != h {
		return packedID{}, false // KMS key IDs are lower case; keep others as strings
	}
	if _, err := hex.Decode(p.b[:], []byte(h)); err != nil {
		return packedID{}, false
	}
	return p, true
}

// String returns the key ID.
func (p packedID) String() string {
	h := hex.EncodeToString(p.b[:])
	if p.mrk {
		return "mrk-" + h
	}
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// idMap maps key IDs to strings, packing the IDs it can.
type idMap struct {
	packed map[packedID]string
	other  map[string]string
}

func newIDMap() idMap { return idMap{packed: map[packedID]string{}, other: map[string]string{}} }

func (m idMap) get(id string) (string, bool) {
	if p, ok := packID(id); ok {
		v, found := m.packed[p]
		return v, found
	}
	v, found := m.other[id]
	return v, found
}

func (m idMap) set(id, v string) {
	if p, ok := packID(id); ok {
		m.packed[p] = v
		return
	}
	m.other[strings.Clone(id)] = v
}

// comparePacked orders packed IDs like their strings.
func comparePacked(a, b packedID) int {
	if a.mrk != b.mrk {
		if a.mrk {
			return 1
		}
		return -1
	}
	return strings.Compare(string(a.b[:]), string(b.b[:]))
}

// inRegion sends one call to region: KMS keys are regional, and a
// multi-Region primary may live outside the function's Region.
func inRegion(region string) func(*kms.Options) {
	return func(o *kms.Options) {
		if region != "" {
			o.Region = region
		}
	}
}

// keyARN builds a key ARN
// (https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#key-id-key-ARN).
func keyARN(partition, region, account, keyID string) string {
	return "arn:" + partition + ":kms:" + region + ":" + account + ":key/" + keyID
}

// parseKeyARN returns the Region and key ID of a key ARN.
func parseKeyARN(arn string) (region, keyID string, ok bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kms" {
		return "", "", false
	}
	id, found := strings.CutPrefix(parts[5], "key/")
	if !found || id == "" {
		return "", "", false
	}
	return parts[3], id, true
}
