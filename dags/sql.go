package dags

import (
	"path"
	"strings"
)

var sqlFields = []string{"sql", "conn_id", "snowflake_conn_id", "postgres_conn_id", "warehouse", "database", "schema", "role",
	"parameters", "autocommit", "split_statements", "return_last", "show_return_value_in_logs", "handler", "hook_params",
	"authenticator", "session_parameters", "region", "requires_result_fetch", "output_processor", "retry_on_failure"}

// SQLSpec is SQLExecuteQueryOperator (and SnowflakeOperator,
// PostgresOperator): SQL run on a connection's database from inside the
// server.
type SQLSpec struct {
	ConnID string `json:"conn_id"`
	// SQL holds the statements or scripts, each templated; a file named
	// in the DAG (".sql") is read when the DAG loads.
	SQL       []string `json:"sql"`
	Files     []string `json:"sql_files,omitempty"` // the files SQL came from, for display
	Warehouse string   `json:"warehouse,omitempty"`
	Database  string   `json:"database,omitempty"`
	Schema    string   `json:"schema,omitempty"`
	Role      string   `json:"role,omitempty"`
	// Parameters are bound to the statements' placeholders: a list for
	// %s (or the drivers' own ? and $1), a mapping for %(name)s, as
	// Airflow's hooks bind them (pyformat).
	Parameters      []any          `json:"parameters,omitempty"`
	NamedParameters map[string]any `json:"named_parameters,omitempty"`
	Autocommit      bool           `json:"autocommit"`
	SplitStatements bool           `json:"split_statements"`
	ShowResults     bool           `json:"show_return_value_in_logs"`
	// ReturnAll (return_last: false) pushes the rows of every statement,
	// not only the last one's.
	ReturnAll bool `json:"return_all,omitempty"`

	at *val
}

func (SQLSpec) Kind() string { return "SQLExecuteQueryOperator" }
func (SQLSpec) inProcess()   {}
func (SQLSpec) pushesXCom()  {}

func (s SQLSpec) templates() []templateField {
	var out []templateField
	for _, q := range s.SQL {
		out = append(out, templateField{"sql", q, s.at})
	}
	for _, p := range s.Parameters {
		if str, ok := p.(string); ok {
			out = append(out, templateField{"parameters", str, s.at})
		}
	}
	for _, name := range sortedKeys(s.NamedParameters) {
		if str, ok := s.NamedParameters[name].(string); ok {
			out = append(out, templateField{"parameters." + name, str, s.at})
		}
	}
	return out
}

// Render renders every SQL text and the string parameters.
func (s SQLSpec) Render(r *Renderer) (OperatorSpec, error) {
	out := s
	var err error
	if out.SQL, err = r.list("sql", s.SQL); err != nil {
		return nil, err
	}
	out.Parameters = make([]any, len(s.Parameters))
	for i, p := range s.Parameters {
		if str, ok := p.(string); ok {
			if p, err = r.field("parameters", str); err != nil {
				return nil, err
			}
		}
		out.Parameters[i] = p
	}
	if s.NamedParameters != nil {
		out.NamedParameters = make(map[string]any, len(s.NamedParameters))
		for name, p := range s.NamedParameters {
			if str, ok := p.(string); ok {
				if p, err = r.field("parameters."+name, str); err != nil {
					return nil, err
				}
			}
			out.NamedParameters[name] = p
		}
	}
	return out, nil
}

func decodeSQL(d *taskDecoder) OperatorSpec {
	s := SQLSpec{SplitStatements: true}
	written := ""
	if v := d.own.get("operator"); v != nil {
		written = v.str
	}
	switch {
	case strings.HasSuffix(written, "SnowflakeOperator") || strings.HasSuffix(written, "SnowflakeSqlApiOperator"):
		s.ConnID = "snowflake_default"
	case strings.HasSuffix(written, "PostgresOperator"):
		s.ConnID = "postgres_default"
	}
	for _, key := range []string{"conn_id", "snowflake_conn_id", "postgres_conn_id"} {
		if v := d.take(key); v != nil {
			s.ConnID, _ = d.r.str(key, v)
		}
	}
	if s.ConnID == "" {
		d.r.errf(d.own, "%s needs conn_id: the connection of the database", written)
	}
	v := d.take("sql")
	s.at = v
	switch {
	case v == nil:
		d.r.errf(d.own, "%s needs sql", written)
	case v.kind == kindSeq:
		for _, item := range v.items {
			if q, ok := d.r.str("sql", item); ok {
				s.addSQL(d, item, q)
			}
		}
	default:
		if q, ok := d.r.str("sql", v); ok {
			s.addSQL(d, v, q)
		}
	}
	for key, dst := range map[string]*string{"warehouse": &s.Warehouse, "database": &s.Database, "schema": &s.Schema, "role": &s.Role} {
		if v := d.take(key); v != nil {
			*dst, _ = d.r.str(key, v)
		}
	}
	if v := d.take("parameters"); v != nil {
		switch v.kind {
		case kindSeq:
			s.Parameters, _ = toAny(v).([]any)
		case kindMap:
			s.NamedParameters = toAnyMap(d.r, "parameters", v)
		default:
			d.r.errf(v, "parameters: expected a list (for %%s placeholders) or a mapping (for %%(name)s), got %s", v.describe())
		}
	}
	if v := d.take("autocommit"); v != nil {
		s.Autocommit, _ = d.r.boolean("autocommit", v)
	}
	if v := d.take("split_statements"); v != nil {
		s.SplitStatements, _ = d.r.boolean("split_statements", v)
	}
	if v := d.take("show_return_value_in_logs"); v != nil {
		s.ShowResults, _ = d.r.boolean("show_return_value_in_logs", v)
	}
	for _, key := range []string{"handler", "output_processor"} {
		if v := d.take(key); v != nil {
			d.r.errf(v, "%s is a Python function; updraft runs no Python", key)
		}
	}
	if v := d.take("return_last"); v != nil {
		last, _ := d.r.boolean("return_last", v)
		s.ReturnAll = !last
	}
	for _, key := range []string{"hook_params", "authenticator", "session_parameters", "region", "requires_result_fetch", "retry_on_failure"} {
		if v := d.take(key); v != nil {
			d.r.warnf(v, "%s is ignored: set it on the connection", key)
		}
	}
	return s
}

// addSQL adds one SQL text, reading it from a file when it names one.
func (s *SQLSpec) addSQL(d *taskDecoder, at *val, q string) {
	trimmed := strings.TrimSpace(q)
	if strings.HasSuffix(strings.ToLower(trimmed), ".sql") && !strings.ContainsAny(trimmed, " \n\t;") {
		if path.IsAbs(trimmed) || strings.Contains(path.Clean(trimmed), "..") || d.readFile == nil {
			d.r.errf(at, "sql file %q: name a file in the DAG folder, relative to the DAG file", trimmed)
			return
		}
		b, err := d.readFile(trimmed)
		if err != nil {
			d.r.errf(at, "sql file %q: %v", trimmed, unwrapPathError(err))
			return
		}
		s.SQL = append(s.SQL, string(b))
		s.Files = append(s.Files, trimmed)
		return
	}
	if trimmed == "" {
		d.r.errf(at, "sql is empty")
		return
	}
	s.SQL = append(s.SQL, q)
}
