package dags

import (
	"bytes"
	"strings"
	"testing"
)

func TestMaskerMasksEveryForm(t *testing.T) {
	m := NewMasker("s3cr\"et/p@ss", "abc") // "abc" is too short to mask
	for _, tc := range []struct{ in, want string }{
		{`pw=s3cr"et/p@ss end`, `pw=*** end`},
		{`{"pw":"s3cr\"et/p@ss"}`, `{"pw":"***"}`},
		{`postgres://u:s3cr%22et%2Fp%40ss@h/db`, `postgres://u:***@h/db`},
		{`abc stays`, `abc stays`},
	} {
		if got := m.Mask(tc.in); got != tc.want {
			t.Errorf("Mask(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMaskerKeepsMaskingARotatedValue(t *testing.T) {
	m := NewMasker("old-password")
	m.Add("new-password")
	got := m.Mask("old-password new-password")
	if got != "*** ***" {
		t.Fatalf("got %q", got)
	}
	var nilMasker *Masker
	if nilMasker.Mask("x") != "x" {
		t.Fatal("a nil masker changed text")
	}
}

func TestMaskerPrefersTheLongestValue(t *testing.T) {
	m := NewMasker("hunter", "hunter2000")
	if got := m.Mask("hunter2000 hunter"); got != "*** ***" {
		t.Fatalf("got %q", got)
	}
}

// A secret written in pieces, in every way it can be split, never
// reaches the underlying writer whole or in part.
func TestMaskingWriterMasksSecretsSplitAcrossWrites(t *testing.T) {
	secret := "Tr0ub4dor&3"
	m := NewMasker(secret, "Tr0ub4dor&3-longer")
	text := "before " + secret + " middle " + secret + secret + " after Tr0ub"
	for i := 0; i <= len(text); i++ {
		for j := i; j <= len(text); j++ {
			var out bytes.Buffer
			w := m.Writer(&out)
			for _, part := range []string{text[:i], text[i:j], text[j:]} {
				if n, err := w.Write([]byte(part)); err != nil || n != len(part) {
					t.Fatalf("Write = %d, %v", n, err)
				}
				if strings.Contains(out.String(), "Tr0ub4") {
					t.Fatalf("split %d/%d: secret reached the writer: %q", i, j, out.String())
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			want := "before *** middle ****** after Tr0ub"
			if out.String() != want {
				t.Fatalf("split %d/%d: got %q, want %q", i, j, out.String(), want)
			}
		}
	}
}

func TestMaskingWriterHoldsBackOnlyAPossibleSecret(t *testing.T) {
	m := NewMasker("zzzzsecret")
	var out bytes.Buffer
	w := m.Writer(&out)
	w.Write([]byte("line one\nline two zz"))
	if out.String() != "line one\nline two " {
		t.Fatalf("written so far %q", out.String())
	}
	w.Write([]byte("top\n"))
	if out.String() != "line one\nline two zztop\n" {
		t.Fatalf("written so far %q", out.String())
	}
}
