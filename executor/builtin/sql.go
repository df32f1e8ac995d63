package builtin

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/snowflakedb/gosnowflake"
	"github.com/youmark/pkcs8"

	"updraft/dags"
)

// runSQL runs a SQL task's statements on its connection's database: one
// transaction unless autocommit, each statement's query id (Snowflake) and
// row count in the log. Cancelling ctx (a timeout, a kill, a clear) cancels
// the running statement on the server.
func (e *Executor) runSQL(ctx context.Context, s dags.SQLSpec, logLine func(string, ...any), out *result) error {
	results, err := e.querySQL(ctx, s, logLine, true)
	if err != nil || len(results) == 0 {
		return err
	}
	if s.ReturnAll {
		out.returns(results)
	} else {
		out.returns(results[len(results)-1])
	}
	return nil
}

// runBranchSQL runs a BranchSQLOperator's query and follows the branch
// its first value picks.
func (e *Executor) runBranchSQL(ctx context.Context, s dags.BranchSQLSpec, logLine func(string, ...any), out *result) error {
	results, err := e.querySQL(ctx, s.SQLSpec, logLine, true)
	if err != nil {
		return err
	}
	var first any
	found := false
	if len(results) > 0 {
		if rows, _ := results[len(results)-1].([][]any); len(rows) > 0 && len(rows[0]) > 0 {
			first, found = rows[0][0], true
		}
	}
	b, err := s.Choose(first, found)
	if err != nil {
		return err
	}
	logLine("updraft: the query returned %v: following %s", first, strings.Join(b.Follow, ", "))
	out.branch = b
	out.returns(b.Follow)
	return nil
}

// maxResultRows bounds the rows a query may return into an XCom.
const maxResultRows = 100_000

// querySQL runs a task's statements and returns, when collect is set, each
// statement's rows ([][]any, JSON-ready) or nil for a statement that
// returns none, as Airflow's fetch_all handler does.
func (e *Executor) querySQL(ctx context.Context, s dags.SQLSpec, logLine func(string, ...any), collect bool) ([]any, error) {
	conn, err := e.o.Connections.Get(s.ConnID)
	if err != nil {
		return nil, err
	}
	db, engine, err := openDB(conn, s)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var statements []string
	for _, text := range s.SQL {
		if s.SplitStatements {
			statements = append(statements, SplitStatements(text)...)
		} else if strings.TrimSpace(text) != "" {
			statements = append(statements, text)
		}
	}
	logLine("updraft: %d statement(s) on %s connection %s (%s)", len(statements), engine, s.ConnID, conn.Masked())
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", s.ConnID, cleanDBError(err))
	}
	defer c.Close()
	if engine == "postgres" && s.Schema != "" {
		if _, err := c.ExecContext(ctx, "SET search_path TO "+pgx.Identifier{s.Schema}.Sanitize()); err != nil {
			return nil, fmt.Errorf("schema %s: %w", s.Schema, cleanDBError(err))
		}
	}
	var tx *sql.Tx
	var results []any
	run := func(ctx context.Context, q string, args ...any) (*sql.Rows, sql.Result, error) {
		if returnsRows(q) {
			var rows *sql.Rows
			var err error
			if tx != nil {
				rows, err = tx.QueryContext(ctx, q, args...)
			} else {
				rows, err = c.QueryContext(ctx, q, args...)
			}
			return rows, nil, err
		}
		var res sql.Result
		var err error
		if tx != nil {
			res, err = tx.ExecContext(ctx, q, args...)
		} else {
			res, err = c.ExecContext(ctx, q, args...)
		}
		return nil, res, err
	}
	if !s.Autocommit && len(statements) > 1 {
		if tx, err = c.BeginTx(ctx, nil); err != nil {
			return nil, fmt.Errorf("begin: %w", cleanDBError(err))
		}
		defer func() { _ = tx.Rollback() }()
	}
	for i, q := range statements {
		logLine("updraft: statement %d/%d: %s", i+1, len(statements), oneLine(q, 300))
		qctx := ctx
		var ids chan string
		if engine == "snowflake" {
			ids = make(chan string, 1)
			qctx = gosnowflake.WithQueryIDChan(ctx, ids)
		}
		start := time.Now()
		bound, args, err := bind(q, s.Parameters, s.NamedParameters, engine)
		if err != nil {
			return nil, fmt.Errorf("statement %d: %w", i+1, err)
		}
		rows, res, err := run(qctx, bound, args...)
		qid := ""
		if ids != nil {
			select {
			case qid = <-ids:
			default:
			}
		}
		if err != nil {
			if qid != "" {
				return nil, fmt.Errorf("statement %d (query id %s): %w", i+1, qid, cleanDBError(err))
			}
			return nil, fmt.Errorf("statement %d: %w", i+1, cleanDBError(err))
		}
		note := ""
		if qid != "" {
			note = "query id " + qid + ", "
		}
		if rows != nil {
			n, sample, got, err := drain(rows, s.ShowResults, collect)
			results = append(results, got)
			if err != nil {
				return nil, fmt.Errorf("statement %d: %w", i+1, cleanDBError(err))
			}
			logLine("updraft: %s%d row(s) returned in %s", note, n, time.Since(start).Round(time.Millisecond))
			for _, line := range sample {
				logLine("  %s", line)
			}
			continue
		}
		results = append(results, nil)
		n, _ := res.RowsAffected()
		logLine("updraft: %s%d row(s) affected in %s", note, n, time.Since(start).Round(time.Millisecond))
	}
	if tx != nil {
		if err := tx.Commit(); err != nil {
			return nil, fmt.Errorf("commit: %w", cleanDBError(err))
		}
		logLine("updraft: committed")
	}
	return results, nil
}

// drain counts a result's rows, keeps the first ones for the log (keep)
// and, with collect, returns them all as JSON-ready values.
func drain(rows *sql.Rows, keep, collect bool) (int, []string, [][]any, error) {
	defer rows.Close()
	cols, _ := rows.Columns()
	var sample []string
	var all [][]any
	if collect {
		all = [][]any{}
	}
	n := 0
	for rows.Next() {
		n++
		if (!keep || len(sample) >= 20) && !collect {
			continue
		}
		if collect && n > maxResultRows {
			return n, sample, nil, fmt.Errorf("more than %d rows is too much for an XCom: set do_xcom_push: false or return fewer rows", maxResultRows)
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return n, sample, nil, err
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			switch x := v.(type) {
			case []byte:
				v = string(x)
				vals[i] = v
			case time.Time:
				vals[i] = x.Format(time.RFC3339Nano)
			}
			parts[i] = fmt.Sprint(v)
		}
		if collect {
			all = append(all, vals)
		}
		if keep && len(sample) < 20 {
			sample = append(sample, strings.Join(parts, " | "))
		}
	}
	return n, sample, all, rows.Err()
}

// openDB opens the connection's database with the task's overrides.
func openDB(conn Connection, s dags.SQLSpec) (*sql.DB, string, error) {
	switch conn.Type {
	case "postgres", "postgresql":
		u := url.URL{Scheme: "postgres", Host: conn.Host, Path: "/" + firstOf(s.Database, conn.Schema)}
		if conn.Port != 0 {
			u.Host += ":" + strconv.Itoa(conn.Port)
		}
		if conn.Login != "" {
			u.User = url.UserPassword(conn.Login, conn.Password)
		}
		q := url.Values{}
		for k, v := range conn.Extra {
			if k == "sslmode" || k == "application_name" || k == "connect_timeout" {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
		cfg, err := pgx.ParseConfig(u.String())
		if err != nil {
			return nil, "", fmt.Errorf("connection %s: not a usable PostgreSQL connection", conn.ID)
		}
		return stdlib.OpenDB(*cfg), "postgres", nil
	case "snowflake":
		cfg, err := snowflakeConfig(conn, s)
		if err != nil {
			return nil, "", err
		}
		return sql.OpenDB(gosnowflake.NewConnector(gosnowflake.SnowflakeDriver{}, cfg)), "snowflake", nil
	}
	return nil, "", fmt.Errorf("connection %s: SQL on %q connections is not supported (snowflake and postgres are)", conn.ID, conn.Type)
}

// snowflakeConfig maps an Airflow Snowflake connection (and the task's
// overrides) onto the driver's settings. The URI form
// snowflake://user:pass@account/database/schema?warehouse=..&role=.. and
// Airflow's JSON form (extras account, warehouse, database, role, region)
// both work.
func snowflakeConfig(conn Connection, s dags.SQLSpec) (gosnowflake.Config, error) {
	database, schema := conn.Extra["database"], firstOf(conn.Extra["schema"], conn.Schema)
	if db, sc, ok := strings.Cut(conn.Schema, "/"); ok {
		database, schema = firstOf(database, db), sc
	}
	cfg := gosnowflake.Config{
		Account:   firstOf(conn.Extra["account"], accountOf(conn.Host)),
		User:      conn.Login,
		Password:  conn.Password,
		Database:  firstOf(s.Database, database),
		Schema:    firstOf(s.Schema, schema),
		Warehouse: firstOf(s.Warehouse, conn.Extra["warehouse"]),
		Role:      firstOf(s.Role, conn.Extra["role"]),
		Region:    conn.Extra["region"],
		Protocol:  firstOf(conn.Extra["protocol"], "https"),
		Port:      conn.Port,
		// Telemetry would send data to Snowflake about this client.
		DisableTelemetry: true,
		LoginTimeout:     30 * time.Second,
	}
	// A full host name (or a test endpoint) is where to connect; a bare
	// account name is only the account.
	if strings.Contains(conn.Host, ".") || conn.Extra["protocol"] == "http" {
		cfg.Host = conn.Host
	}
	if firstOf(conn.Extra["private_key_content"], conn.Extra["private_key_file"]) != "" {
		pk, err := privateKey(conn)
		if err != nil {
			return cfg, err
		}
		cfg.PrivateKey, cfg.Authenticator, cfg.Password = pk, gosnowflake.AuthTypeJwt, ""
	}
	return cfg, nil
}

// privateKey reads a key-pair connection's PKCS#8 RSA key (Airflow's
// private_key_content or private_key_file extras). An encrypted key is
// decrypted with the connection's password, as Airflow's Snowflake hook
// does.
func privateKey(conn Connection) (*rsa.PrivateKey, error) {
	data := []byte(conn.Extra["private_key_content"])
	if len(data) == 0 {
		b, err := os.ReadFile(conn.Extra["private_key_file"])
		if err != nil {
			return nil, fmt.Errorf("connection %s: private_key_file unreadable", conn.ID)
		}
		data = b
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("connection %s: the private key is not PEM", conn.ID)
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" {
		if conn.Password == "" {
			return nil, fmt.Errorf("connection %s: the private key is encrypted: give its passphrase as the connection's password", conn.ID)
		}
		k, err := pkcs8.ParsePKCS8PrivateKeyRSA(block.Bytes, []byte(strings.TrimSpace(conn.Password)))
		if err != nil {
			return nil, fmt.Errorf("connection %s: the private key cannot be decrypted with the connection's password (wrong passphrase, or not an RSA key)", conn.ID)
		}
		return k, nil
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if k, err1 := x509.ParsePKCS1PrivateKey(block.Bytes); err1 == nil {
			return k, nil
		}
		return nil, fmt.Errorf("connection %s: the private key is not PKCS#8", conn.ID)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("connection %s: Snowflake key-pair authentication needs an RSA key", conn.ID)
	}
	return rk, nil
}

// accountOf is the account in a Snowflake host name
// (xy12345.eu-central-1.snowflakecomputing.com -> xy12345.eu-central-1).
func accountOf(host string) string { return strings.TrimSuffix(host, ".snowflakecomputing.com") }

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// returnsRows guesses whether a statement returns rows from its first word.
func returnsRows(q string) bool {
	word := strings.ToUpper(firstWord(q))
	switch word {
	case "SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "LIST", "LS", "VALUES", "EXPLAIN", "TABLE":
		return true
	}
	return false
}

func firstWord(q string) string {
	q = stripLeadingComments(q)
	end := strings.IndexFunc(q, func(r rune) bool { return r == ' ' || r == '\n' || r == '\t' || r == '(' || r == ';' })
	if end < 0 {
		return q
	}
	return q[:end]
}

func stripLeadingComments(q string) string {
	for {
		q = strings.TrimSpace(q)
		switch {
		case strings.HasPrefix(q, "--"):
			if i := strings.Index(q, "\n"); i >= 0 {
				q = q[i+1:]
				continue
			}
			return ""
		case strings.HasPrefix(q, "/*"):
			if i := strings.Index(q, "*/"); i >= 0 {
				q = q[i+2:]
				continue
			}
			return ""
		}
		return q
	}
}

func hasPlaceholder(q string) bool {
	return strings.Contains(q, "?") || strings.Contains(q, "$1") || strings.Contains(q, ":1")
}

func oneLine(q string, n int) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > n {
		return q[:n] + "…"
	}
	return q
}

// cleanDBError keeps a driver's message and drops what may carry secrets
// (connection URLs).
func cleanDBError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// SplitStatements splits SQL text into statements at semicolons outside
// quotes ('...', "..."), dollar-quoted bodies ($$...$$, $tag$...$tag$) and
// comments. Empty statements (and comment-only ones) are dropped.
func SplitStatements(text string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if st := strings.TrimSpace(cur.String()); stripLeadingComments(st) != "" {
			out = append(out, st)
		}
		cur.Reset()
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(text) {
				if text[j] == c {
					if j+1 < len(text) && text[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				if text[j] == '\\' && c == '\'' {
					j++
				}
				j++
			}
			end := min(j+1, len(text))
			cur.WriteString(text[i:end])
			i = end - 1
		case c == '-' && i+1 < len(text) && text[i+1] == '-':
			j := strings.IndexByte(text[i:], '\n')
			if j < 0 {
				j = len(text) - i
			}
			cur.WriteString(text[i : i+j])
			i += j - 1
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			j := strings.Index(text[i+2:], "*/")
			end := len(text)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			cur.WriteString(text[i:end])
			i = end - 1
		case c == '$':
			j := strings.IndexByte(text[i+1:], '$')
			if j >= 0 {
				tag := text[i : i+j+2]
				if validDollarTag(tag) {
					k := strings.Index(text[i+len(tag):], tag)
					end := len(text)
					if k >= 0 {
						end = i + len(tag) + k + len(tag)
					}
					cur.WriteString(text[i:end])
					i = end - 1
					continue
				}
			}
			cur.WriteByte(c)
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

func validDollarTag(tag string) bool {
	inner := tag[1 : len(tag)-1]
	for _, r := range inner {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return inner == "" || !(inner[0] >= '0' && inner[0] <= '9')
}

// Ping logs in to a SQL connection's database and checks it answers
// (updraft connections test).
func Ping(ctx context.Context, conn Connection) error {
	db, _, err := openDB(conn, dags.SQLSpec{})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return cleanDBError(err)
	}
	return nil
}

// firstCell runs a SQL sensor's query and returns the first cell of its
// first row (found is false when there is no row).
func (e *Executor) firstCell(ctx context.Context, s dags.SQLSpec) (any, bool, error) {
	conn, err := e.o.Connections.Get(s.ConnID)
	if err != nil {
		return nil, false, err
	}
	db, engine, err := openDB(conn, s)
	if err != nil {
		return nil, false, err
	}
	defer db.Close()
	if len(s.SQL) != 1 {
		return nil, false, errors.New("a SQL sensor runs one query")
	}
	q, args, err := bind(s.SQL[0], s.Parameters, s.NamedParameters, engine)
	if err != nil {
		return nil, false, err
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, cleanDBError(err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, false, cleanDBError(rows.Err())
	}
	cols, err := rows.Columns()
	if err != nil || len(cols) == 0 {
		return nil, false, fmt.Errorf("the query returned no column")
	}
	cells := make([]any, len(cols))
	for i := range cells {
		cells[i] = new(any)
	}
	if err := rows.Scan(cells...); err != nil {
		return nil, false, cleanDBError(err)
	}
	return *(cells[0].(*any)), true, nil
}
