package ops

import (
	"errors"
	"strings"
	"testing"
)

// A conf that is not JSON says where and what, in words, and is
// ErrInvalid.
func TestDecodeConfSaysWhere(t *testing.T) {
	for raw, want := range map[string]string{
		"{\n  \"a\": 1,\n  b: 2\n}": "line 3, column 3",
		`{"a": 1`:                   "ends too early",
		`[1, 2]`:                    "must be a JSON object",
		`{"a": 1} {"b": 2}`:         "something follows",
	} {
		_, err := DecodeConf([]byte(raw))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", raw, err, want)
		}
	}
	if m, err := DecodeConf([]byte(`{"a": 1.5}`)); err != nil || m["a"] == nil {
		t.Errorf("a good conf: %v %v", m, err)
	}
}
