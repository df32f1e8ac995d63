package dags

import (
	"regexp"
	"strings"
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
