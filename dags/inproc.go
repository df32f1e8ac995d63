package dags

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// InProcess marks operator specs that run inside the server (a request, a
// post) rather than as a process or a pod.
type InProcess interface {
	OperatorSpec
	inProcess()
}

var httpFields = []string{"http_conn_id", "endpoint", "method", "data", "headers", "response_check", "response_filter",
	"extra_options", "log_response", "auth_type", "tcp_keep_alive", "tcp_keep_alive_idle", "tcp_keep_alive_count",
	"tcp_keep_alive_interval", "deferrable", "pagination_function"}

// HttpSpec is HttpOperator (SimpleHttpOperator): one request to a
// connection's base URL.
type HttpSpec struct {
	ConnID   string            `json:"http_conn_id"`
	Endpoint string            `json:"endpoint"`
	Method   string            `json:"method"`
	Body     string            `json:"body,omitempty"` // data given as text
	Form     map[string]string `json:"form,omitempty"` // data given as a mapping
	Headers  map[string]string `json:"headers,omitempty"`
	// The response check: the allowed status codes (default: any below
	// 400, as Airflow) and a regular expression the body must match.
	CheckStatus []int  `json:"response_check_status,omitempty"`
	CheckRegex  string `json:"response_check_regex,omitempty"`
	LogResponse bool   `json:"log_response"`
	// ResponseFilter is a template rendered after the request, with the
	// response in its context; its text is the task's XCom instead of the
	// response body. (Airflow's is a Python callable.)
	ResponseFilter string `json:"response_filter,omitempty"`

	at map[string]*val
}

func (HttpSpec) Kind() string { return "HttpOperator" }
func (HttpSpec) inProcess()   {}
func (HttpSpec) pushesXCom()  {}

func (s HttpSpec) templates() []templateField {
	out := []templateField{{"endpoint", s.Endpoint, s.at["endpoint"]}, {"data", s.Body, s.at["data"]}}
	for _, k := range sortedKeys(s.Form) {
		out = append(out, templateField{"data." + k, s.Form[k], s.at["data"]})
	}
	for _, k := range sortedKeys(s.Headers) {
		out = append(out, templateField{"headers." + k, s.Headers[k], s.at["headers"]})
	}
	return append(out, templateField{"response_filter", s.ResponseFilter, s.at["response_filter"]})
}

// Render renders endpoint, data and headers.
func (s HttpSpec) Render(r *Renderer) (OperatorSpec, error) {
	var err error
	out := s
	if out.Endpoint, err = r.field("endpoint", s.Endpoint); err != nil {
		return nil, err
	}
	if out.Body, err = r.field("data", s.Body); err != nil {
		return nil, err
	}
	if out.Form, err = r.stringMap("data", s.Form); err != nil {
		return nil, err
	}
	if out.Headers, err = r.stringMap("headers", s.Headers); err != nil {
		return nil, err
	}
	return out, nil
}

var httpMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

func decodeHTTP(d *taskDecoder) OperatorSpec { return decodeHTTPWith(d, "POST", "data") }

// decodeHTTPWith reads a request's fields; the HTTP sensor defaults to GET
// and calls its data request_params.
func decodeHTTPWith(d *taskDecoder, method, dataKey string) HttpSpec {
	s := HttpSpec{ConnID: "http_default", Method: method, at: map[string]*val{}}
	if v := d.take("http_conn_id"); v != nil {
		s.ConnID, _ = d.r.str("http_conn_id", v)
	}
	if v := d.take("endpoint"); v != nil {
		s.Endpoint, _ = d.r.str("endpoint", v)
		s.at["endpoint"] = v
	}
	if v := d.take("method"); v != nil {
		if m, ok := d.r.str("method", v); ok {
			s.Method = strings.ToUpper(m)
			if !contains(httpMethods, s.Method) {
				d.r.errf(v, "method %q: use one of %s", m, strings.Join(httpMethods, ", "))
			}
		}
	}
	if v := d.take("headers"); v != nil {
		s.Headers, _ = d.r.strMap("headers", v)
		s.at["headers"] = v
	}
	if v := d.take(dataKey); v != nil {
		s.at["data"] = v
		switch v.kind {
		case kindMap:
			// A mapping is sent as JSON when the headers say so, else as a
			// form (or query, for GET), as requests does with a dict.
			if strings.Contains(strings.ToLower(headerValue(s.Headers, "Content-Type")), "json") {
				b, _ := json.Marshal(toAny(v))
				s.Body = string(b)
			} else {
				s.Form, _ = d.r.strMap(dataKey, v)
			}
		default:
			s.Body, _ = d.r.str(dataKey, v)
		}
	}
	if v := d.take("response_check"); v != nil {
		switch v.kind {
		case kindSeq:
			for _, item := range v.items {
				if c, ok := d.r.integer("response_check", item); ok {
					if c < 100 || c > 599 {
						d.r.errf(item, "response_check: %d is not an HTTP status", c)
						continue
					}
					s.CheckStatus = append(s.CheckStatus, c)
				}
			}
		default:
			if re, ok := d.r.str("response_check", v); ok {
				if _, err := regexp.Compile(re); err != nil {
					d.r.errf(v, "response_check: not a regular expression: %v", err)
				}
				s.CheckRegex = re
			}
		}
	}
	if v := d.take("log_response"); v != nil {
		s.LogResponse, _ = d.r.boolean("log_response", v)
	}
	if v := d.take("response_filter"); v != nil {
		s.ResponseFilter, _ = d.r.str("response_filter", v)
		s.at["response_filter"] = v
		if !looksTemplated(s.ResponseFilter) {
			d.r.errf(v, "response_filter is a template rendered with the response (updraft runs no Python lambdas), "+
				`e.g. "{{ response.json().items | tojson }}"`)
		}
	}
	if v := d.take("pagination_function"); v != nil {
		d.r.errf(v, "pagination_function is a Python function; updraft runs no Python (make one request per task)")
	}
	if v := d.take("auth_type"); v != nil {
		d.r.warnf(v, "auth_type is ignored: the connection's login and password are sent as basic auth")
	}
	for _, k := range []string{"extra_options", "tcp_keep_alive", "tcp_keep_alive_idle", "tcp_keep_alive_count", "tcp_keep_alive_interval"} {
		if v := d.take(k); v != nil {
			d.r.warnf(v, "%s is ignored: updraft's HTTP client keeps its connections alive and has no per-task options", k)
		}
	}
	if v := d.take("deferrable"); v != nil {
		d.r.warnf(v, "deferrable is ignored: the request runs in the server without holding a worker anyway")
	}
	return s
}

// Filter returns the task's result from its response: the body as text,
// or response_filter rendered with response (text, json(), status_code,
// headers, ok) in its context.
func (s HttpSpec) Filter(status int, body []byte, headers map[string]string) (any, error) {
	if s.ResponseFilter == "" {
		return string(body), nil
	}
	tpl, err := parseTemplate(s.ResponseFilter)
	if err != nil {
		return nil, fmt.Errorf("response_filter: %w", cleanTemplateError(err))
	}
	parse := func(*exec.VarArgs) (any, error) {
		v, err := decodeJSON(string(body))
		if err != nil {
			return nil, fmt.Errorf("response.json(): the body is not JSON: %v", err)
		}
		return v, nil
	}
	response := attrs{"text": string(body), "json": parse, "status_code": status, "headers": headers,
		"ok": status < 400, "_str": fmt.Sprintf("<Response [%d]>", status)}
	out, err := execute(tpl, map[string]any{"response": response})
	if err != nil {
		return nil, fmt.Errorf("response_filter: %w", cleanTemplateError(err))
	}
	return out, nil
}

func headerValue(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// CheckResponse applies the response check to a status and a body.
func (s HttpSpec) CheckResponse(status int, body []byte) error {
	if len(s.CheckStatus) > 0 {
		if !containsInt(s.CheckStatus, status) {
			return fmt.Errorf("response check: status %d is not one of %v", status, s.CheckStatus)
		}
	} else if status >= 400 {
		return fmt.Errorf("HTTP %d %s", status, http.StatusText(status))
	}
	if s.CheckRegex != "" {
		re, err := regexp.Compile(s.CheckRegex)
		if err != nil {
			return err
		}
		if !re.Match(body) {
			return fmt.Errorf("response check: the body does not match %q", s.CheckRegex)
		}
	}
	return nil
}

func containsInt(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}

var mattermostFields = []string{"mattermost_conn_id", "text", "channel", "username", "icon_url", "icon_emoji", "attachments", "props", "type"}

// MattermostSpec is a MattermostOperator: a post to an incoming webhook
// connection (Airflow's Slack-webhook operators have the same shape).
type MattermostSpec struct {
	ConnID      string           `json:"mattermost_conn_id"`
	Text        string           `json:"text,omitempty"`
	Channel     string           `json:"channel,omitempty"`
	Username    string           `json:"username,omitempty"`
	IconURL     string           `json:"icon_url,omitempty"`
	IconEmoji   string           `json:"icon_emoji,omitempty"`
	Attachments []map[string]any `json:"attachments,omitempty"`
	Props       map[string]any   `json:"props,omitempty"`
	Type        string           `json:"type,omitempty"`

	at map[string]*val
}

func (MattermostSpec) Kind() string { return "MattermostOperator" }
func (MattermostSpec) inProcess()   {}

func (s MattermostSpec) templates() []templateField {
	out := []templateField{{"text", s.Text, s.at["text"]}, {"channel", s.Channel, s.at["channel"]}}
	for _, str := range leafStrings(s.Attachments) {
		out = append(out, templateField{"attachments", str, s.at["attachments"]})
	}
	return out
}

// leafStrings lists every string inside attachments, in a fixed order.
func leafStrings(v any) []string {
	var out []string
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case string:
			out = append(out, t)
		case []map[string]any:
			for _, e := range t {
				walk(e)
			}
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(t[k])
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// Render renders text, channel and every string in the attachments.
func (s MattermostSpec) Render(r *Renderer) (OperatorSpec, error) {
	var err error
	out := s
	if out.Text, err = r.field("text", s.Text); err != nil {
		return nil, err
	}
	if out.Channel, err = r.field("channel", s.Channel); err != nil {
		return nil, err
	}
	out.Attachments = nil
	for _, a := range s.Attachments {
		v, err := r.tree("attachments", a)
		if err != nil {
			return nil, err
		}
		out.Attachments = append(out.Attachments, v.(map[string]any))
	}
	return out, nil
}

func decodeMattermost(d *taskDecoder) OperatorSpec {
	s := MattermostSpec{ConnID: "mattermost_default", at: map[string]*val{}}
	if v := d.take("mattermost_conn_id"); v != nil {
		s.ConnID, _ = d.r.str("mattermost_conn_id", v)
	}
	for key, dst := range map[string]*string{"text": &s.Text, "channel": &s.Channel, "username": &s.Username, "icon_url": &s.IconURL, "icon_emoji": &s.IconEmoji} {
		if v := d.take(key); v != nil {
			*dst, _ = d.r.str(key, v)
			s.at[key] = v
		}
	}
	if v := d.take("attachments"); v != nil {
		s.at["attachments"] = v
		if v.kind != kindSeq {
			d.r.errf(v, "attachments: expected a list of attachments, got %s", v.describe())
		} else {
			for _, item := range v.items {
				m, ok := toAny(item).(map[string]any)
				if !ok {
					d.r.errf(item, "attachments: each attachment is a mapping (title, text, color, fields...)")
					continue
				}
				s.Attachments = append(s.Attachments, m)
			}
		}
	}
	if v := d.take("props"); v != nil {
		s.Props = toAnyMap(d.r, "props", v)
	}
	if v := d.take("type"); v != nil {
		s.Type, _ = d.r.str("type", v)
	}
	if s.Text == "" && len(s.Attachments) == 0 {
		d.r.errf(d.own, "MattermostOperator needs text or attachments")
	}
	return s
}
