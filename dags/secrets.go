package dags

import (
	"encoding/json"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// sensitiveWords are Airflow's default sensitive field names: a variable
// (or connection extra) whose key contains one is secret even when nobody
// said so.
var sensitiveWords = []string{"access_token", "api_key", "apikey", "authorization", "passphrase", "passwd",
	"password", "private_key", "secret", "token", "keyfile_dict", "service_account"}

// SensitiveName reports whether a key names a secret by Airflow's rule.
func SensitiveName(key string) bool {
	k := strings.ToLower(key)
	for _, w := range sensitiveWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

var variableKeyRE = regexp.MustCompile(`^[\w.-]{1,250}$`)

// ValidVariableKey reports whether key can name a Variable: 1-250 letters,
// digits, '_', '-' or '.'.
func ValidVariableKey(key string) bool { return variableKeyRE.MatchString(key) }

// Mask replaces every secret value in text with "***" (longest first, so a
// secret containing another is masked whole). Values shorter than 4 bytes
// are not masked: masking "1" would make every log unreadable and hide
// nothing.
func Mask(text string, secrets []string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			text = strings.ReplaceAll(text, s, "***")
		}
	}
	return text
}

// minSecretLen is the shortest value masked (see Mask).
const minSecretLen = 4

// Masker replaces every secret value it knows with "***". It only ever
// learns: a value once added stays masked for the life of the process, so
// text that leaks an old value (a rotated or deleted variable, a changed
// password) is still masked. Each value is also masked in the forms it
// takes inside JSON strings and URLs. Safe for concurrent use.
type Masker struct {
	mu       sync.RWMutex
	known    map[string]bool
	longest  int
	first    [256]bool // first bytes of the values
	values   []string  // longest first
	replacer *strings.Replacer
}

// NewMasker returns a masker that knows the given values.
func NewMasker(values ...string) *Masker {
	m := &Masker{known: map[string]bool{}}
	m.Add(values...)
	return m
}

// Add learns secret values; values shorter than 4 bytes are ignored.
func (m *Masker) Add(values ...string) {
	if m == nil {
		return
	}
	var fresh []string
	m.mu.RLock()
	for _, v := range values {
		for _, form := range secretForms(v) {
			if len(form) >= minSecretLen && !m.known[form] {
				fresh = append(fresh, form)
			}
		}
	}
	m.mu.RUnlock()
	if len(fresh) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range fresh {
		if m.known[v] {
			continue
		}
		m.known[v] = true
		m.values = append(m.values, v)
		m.longest = max(m.longest, len(v))
		m.first[v[0]] = true
	}
	sort.SliceStable(m.values, func(i, j int) bool { return len(m.values[i]) > len(m.values[j]) })
	pairs := make([]string, 0, 2*len(m.values))
	for _, v := range m.values {
		pairs = append(pairs, v, "***")
	}
	m.replacer = strings.NewReplacer(pairs...)
}

// secretForms are the ways a value shows up in text: as it is, escaped
// inside a JSON string, and percent-encoded in a URL.
func secretForms(v string) []string {
	forms := []string{v}
	if b, err := json.Marshal(v); err == nil {
		if s := string(b[1 : len(b)-1]); s != v {
			forms = append(forms, s)
		}
	}
	for _, s := range []string{url.QueryEscape(v), url.PathEscape(v)} {
		if s != v {
			forms = append(forms, s)
		}
	}
	return forms
}

// Mask returns text with every known value replaced by "***". A nil
// masker masks nothing.
func (m *Masker) Mask(text string) string {
	if m == nil {
		return text
	}
	m.mu.RLock()
	r := m.replacer
	m.mu.RUnlock()
	if r == nil {
		return text
	}
	return r.Replace(text)
}

// Values returns the known values, longest first.
func (m *Masker) Values() []string {
	if m == nil {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]string(nil), m.values...)
}

// Writer returns a writer that masks what is written to it before it
// reaches w. It holds back only a tail that could be the start of a
// secret (so a value split across writes is still masked whole); Close
// writes that tail, masked. Not safe for concurrent writes.
func (m *Masker) Writer(w io.Writer) *MaskingWriter { return &MaskingWriter{m: m, w: w} }

// MaskingWriter is Masker.Writer's writer.
type MaskingWriter struct {
	m    *Masker
	w    io.Writer
	held []byte
}

// Write masks and writes what can be written now. It reports len(p)
// when everything was either written or held back.
func (mw *MaskingWriter) Write(p []byte) (int, error) {
	buf := append(mw.held, p...)
	cut := mw.m.safeCut(buf)
	if cut > 0 {
		if _, err := io.WriteString(mw.w, mw.m.Mask(string(buf[:cut]))); err != nil {
			return 0, err
		}
	}
	mw.held = append(mw.held[:0:0], buf[cut:]...)
	return len(p), nil
}

// Close writes what was held back, masked. It does not close w.
func (mw *MaskingWriter) Close() error {
	if len(mw.held) == 0 {
		return nil
	}
	_, err := io.WriteString(mw.w, mw.m.Mask(string(mw.held)))
	mw.held = nil
	return err
}

// safeCut returns how much of buf can be masked and written now: all of
// it but the longest tail that is a proper prefix of a secret, moved back
// so that no whole secret straddles the cut.
func (m *Masker) safeCut(buf []byte) int {
	if m == nil {
		return len(buf)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.longest == 0 {
		return len(buf)
	}
	cut := len(buf)
	for i := max(0, len(buf)-m.longest+1); i < len(buf); i++ {
		if !m.first[buf[i]] {
			continue
		}
		tail := buf[i:]
		for _, v := range m.values {
			if len(v) > len(tail) && strings.HasPrefix(v, string(tail)) {
				cut = i
				break
			}
		}
		if cut == i {
			break
		}
	}
	// A whole secret that starts before the cut and ends after it is held too.
	for moved := true; moved; {
		moved = false
		for _, v := range m.values {
			lo := max(0, cut-len(v)+1)
			hi := min(len(buf), cut+len(v)-1)
			if lo >= cut || hi <= cut {
				continue
			}
			if j := strings.Index(string(buf[lo:hi]), v); j >= 0 && lo+j < cut {
				cut, moved = lo+j, true
			}
		}
	}
	return cut
}
