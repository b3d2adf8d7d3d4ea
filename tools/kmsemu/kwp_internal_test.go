package kmsemu

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// TestAESKeyUnwrapPadRFC5649Vectors unwraps the two examples of RFC 5649,
// section 6 (a 20-octet and a 7-octet key under one 192-bit KEK), and
// refuses what is not a valid wrapping.
func TestAESKeyUnwrapPadRFC5649Vectors(t *testing.T) {
	kek, _ := hex.DecodeString("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	cases := []struct{ wrapped, key string }{
		{"138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a", "c37b7e6492584340bed12207808941155068f738"},
		{"afbeb0f07dfbf5419200f2ccb50bb24f", "466f7250617369"},
	}
	for _, c := range cases {
		w, _ := hex.DecodeString(c.wrapped)
		want, _ := hex.DecodeString(c.key)
		got, err := aesKeyUnwrapPad(kek, w)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("unwrap %s = %x, %v; want %s", c.wrapped, got, err, c.key)
		}
		bad := append([]byte(nil), w...)
		bad[len(bad)-1] ^= 1
		if _, err := aesKeyUnwrapPad(kek, bad); err == nil {
			t.Fatalf("an altered wrapping of %s unwrapped", c.key)
		}
		other := append([]byte(nil), kek...)
		other[0] ^= 1
		if _, err := aesKeyUnwrapPad(other, w); err == nil {
			t.Fatalf("%s unwrapped under another KEK", c.key)
		}
	}
	for _, n := range []int{0, 8, 17} {
		if _, err := aesKeyUnwrapPad(kek, make([]byte, n)); err == nil {
			t.Fatalf("%d bytes unwrapped", n)
		}
	}
}
