package web

import (
	"net/url"
	"strings"
	"testing"
)

// Whatever next a login form is given, the redirect it leads to stays on
// this site, however a browser reads it.
func FuzzSafeNext(f *testing.F) {
	for _, seed := range []string{"/dags", "//evil.example", "/\t/evil.example", "/\\evil.example", "\\\\evil.example",
		" /x", "\x00/x", "/\r\n/evil", "https://evil.example", "/%2F/evil", "/@evil", "/..//evil", "http:evil", "/dags?next=//evil"} {
		f.Add(seed)
	}
	base, _ := url.Parse("https://updraft.example/login")
	f.Fuzz(func(t *testing.T, in string) {
		out := safeNext(in)
		if safeNext(out) != out {
			t.Fatalf("safeNext(%q) = %q is not stable", in, out)
		}
		// A browser removes tabs and newlines and takes backslashes as
		// slashes before it resolves the location.
		browser := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(out)
		if !strings.HasPrefix(browser, "/") || strings.HasPrefix(browser, "//") {
			t.Fatalf("safeNext(%q) = %q, which a browser reads as %q", in, out, browser)
		}
		if strings.ContainsFunc(out, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Fatalf("safeNext(%q) = %q holds a control character", in, out)
		}
		u, err := url.Parse(browser)
		if err != nil {
			t.Fatalf("safeNext(%q) = %q does not parse: %v", in, out, err)
		}
		if got := base.ResolveReference(u); got.Host != base.Host || got.Scheme != base.Scheme {
			t.Fatalf("safeNext(%q) = %q leads to %s", in, out, got)
		}
	})
}
