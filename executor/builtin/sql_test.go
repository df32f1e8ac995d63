package builtin

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/youmark/pkcs8"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/builtin/snowflaketest"
	"updraft/store/pgtest"
)

func TestSplitStatements(t *testing.T) {
	in := `-- load
COPY INTO t FROM @s; -- trailing
INSERT INTO t VALUES ('a;b', "c;d", 'it''s;'); /* block; comment */
CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;
;
SELECT $1`
	want := []string{"-- load\nCOPY INTO t FROM @s", "-- trailing\nINSERT INTO t VALUES ('a;b', \"c;d\", 'it''s;')",
		"/* block; comment */\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql", "SELECT $1"}
	if got := SplitStatements(in); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if !returnsRows("/* c */ with x as (select 1) select * from x") || returnsRows("-- x\nINSERT INTO t SELECT 1") {
		t.Fatal("returnsRows")
	}
}

func sqlTry(t *testing.T, id string, spec dags.SQLSpec) executor.Try {
	return try(t, id, spec)
}

// The SQL operator against a real PostgreSQL started by the test.
func TestSQLOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "warehouse")
	env := map[string]string{"UPDRAFT_CONN_WAREHOUSE_PG": strings.Replace(dsn, "postgres://", "postgresql://", 1)}
	ex := New(Options{Connections: Connections{Getenv: func(k string) string { return env[k] }}})
	ctx := context.Background()
	run := func(id string, spec dags.SQLSpec) (executor.Event, string) {
		t.Helper()
		tr := sqlTry(t, id, spec)
		tr.XComPush = true
		if err := ex.Start(ctx, tr); err != nil {
			t.Fatal(err)
		}
		ev := final(t, ex, tr.Key)
		log, _ := os.ReadFile(tr.LogPath)
		return ev, string(log)
	}
	ev, log := run("load", dags.SQLSpec{ConnID: "warehouse_pg", SplitStatements: true, ShowResults: true,
		SQL:        []string{"CREATE TABLE orders (day date, n int); INSERT INTO orders VALUES ('2024-05-01', 1), ('2024-05-01', 2), ('2024-05-02', 3)", "SELECT day, sum(n) FROM orders WHERE day = $1 GROUP BY day"},
		Parameters: []any{"2024-05-01"}})
	if ev.State != executor.Succeeded || !strings.Contains(log, "3 row(s) affected") || !strings.Contains(log, "1 row(s) returned") ||
		!strings.Contains(log, "2024-05-01 00:00:00 +0000 UTC | 3") || !strings.Contains(log, "committed") || strings.Contains(log, "password") {
		t.Fatalf("load: %+v\n%s", ev, log)
	}
	// The XCom is the last statement's rows, as Airflow's fetch_all handler returns them.
	if got := string(ev.XCom["return_value"]); got != `[["2024-05-01T00:00:00Z",3]]` {
		t.Fatalf("XCom of the last statement: %s", got)
	}
	// Airflow's pyformat placeholders, as DAG files written for Airflow
	// have them: %s from a list, %(name)s from a mapping, %% for %.
	ev, log = run("pyformat", dags.SQLSpec{ConnID: "warehouse_pg", ShowResults: true,
		SQL:        []string{"SELECT count(*) || '%%' FROM orders WHERE day = %s::date OR n = %s"},
		Parameters: []any{"2024-05-02", 1}})
	if ev.State != executor.Succeeded || !strings.Contains(log, "2%") {
		t.Fatalf("pyformat list: %+v\n%s", ev, log)
	}
	ev, log = run("named", dags.SQLSpec{ConnID: "warehouse_pg", ShowResults: true,
		SQL:             []string{"SELECT sum(n) FROM orders WHERE day = %(day)s::date AND n >= %(min)s AND day = %(day)s::date"},
		NamedParameters: map[string]any{"day": "2024-05-01", "min": 2, "unused": "x"}})
	if ev.State != executor.Succeeded || !strings.Contains(log, "]   2\n") {
		t.Fatalf("pyformat mapping: %+v\n%s", ev, log)
	}
	ev, _ = run("missing", dags.SQLSpec{ConnID: "warehouse_pg", SQL: []string{"SELECT %(nope)s"}, NamedParameters: map[string]any{"day": "x"}})
	if ev.State != executor.Failed || !strings.Contains(ev.Reason, `statement 1: %(nope)s: parameters has no "nope"`) {
		t.Fatalf("missing name: %+v", ev)
	}
	// Without autocommit the statements are one transaction: a failure
	// leaves nothing behind.
	ev, log = run("bad", dags.SQLSpec{ConnID: "warehouse_pg", SplitStatements: true,
		SQL: []string{"INSERT INTO orders VALUES ('2024-05-03', 9); INSERT INTO nope VALUES (1)"}})
	if ev.State != executor.Failed || !strings.Contains(ev.Reason, `statement 2: ERROR: relation "nope" does not exist`) {
		t.Fatalf("bad: %+v\n%s", ev, log)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM orders").Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows after a failed transaction: %d %v", n, err)
	}
	// Schema is the search path; autocommit commits each statement.
	ev, _ = run("schema", dags.SQLSpec{ConnID: "warehouse_pg", SplitStatements: true, Autocommit: true, Schema: "staging",
		SQL: []string{"CREATE SCHEMA staging; CREATE TABLE staging.t (x int); INSERT INTO t VALUES (1)"}})
	if ev.State != executor.Succeeded {
		t.Fatalf("schema: %+v", ev)
	}
	// A timed-out statement is cancelled on the server.
	tr := sqlTry(t, "slow", dags.SQLSpec{ConnID: "warehouse_pg", SQL: []string{"SELECT pg_sleep(30)"}})
	tr.Timeout = 300 * time.Millisecond
	ex.Start(ctx, tr)
	ev = final(t, ex, tr.Key)
	if ev.State != executor.Failed || !strings.Contains(ev.Reason, "execution_timeout of 300ms exceeded") {
		t.Fatalf("timeout: %+v", ev)
	}
	for i := 0; ; i++ {
		var running int
		db.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'").Scan(&running)
		if running == 0 {
			break
		}
		if i == 50 {
			t.Fatal("the statement still runs on the server")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ev, _ := run("unknown", dags.SQLSpec{ConnID: "nope", SQL: []string{"SELECT 1"}}); ev.State != executor.Failed || !strings.Contains(ev.Reason, "UPDRAFT_CONN_NOPE") {
		t.Fatalf("unknown connection: %+v", ev)
	}
}

// The Snowflake path goes through the official driver, gosnowflake,
// against a protocol-level stand-in on loopback (Snowflake's service cannot
// run here): login, statements with bindings, query ids, row counts, a
// failed query and a cancelled one.
func TestSQLOnSnowflake(t *testing.T) {
	sf := snowflaketest.Start(t)
	host, port := sf.HostPort()
	conn := func(extra map[string]string, password string) string {
		extra["account"], extra["protocol"], extra["warehouse"] = "testacct", "http", "LOAD_WH"
		b, _ := json.Marshal(map[string]any{"conn_type": "snowflake", "host": host, "port": port, "login": "loader", "password": password, "extra": extra})
		return string(b)
	}
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	encDER, err := pkcs8.MarshalPrivateKey(key, []byte("key passphrase"), nil)
	if err != nil {
		t.Fatal(err)
	}
	encKey := string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: encDER}))
	env := map[string]string{
		"UPDRAFT_CONN_SNOWFLAKE":    conn(map[string]string{}, "s3cret-pw"),
		"UPDRAFT_CONN_SNOWFLAKE_KP": conn(map[string]string{"private_key_content": pemKey}, ""),
		// An encrypted key (PKCS#8, PBES2) whose passphrase is the connection's password, as in Airflow.
		"UPDRAFT_CONN_SNOWFLAKE_ENC":      conn(map[string]string{"private_key_content": encKey}, "key passphrase"),
		"UPDRAFT_CONN_SNOWFLAKE_ENC_BAD":  conn(map[string]string{"private_key_content": encKey}, "not the passphrase"),
		"UPDRAFT_CONN_SNOWFLAKE_ENC_NONE": conn(map[string]string{"private_key_content": encKey}, ""),
		"UPDRAFT_CONN_SNOWFLAKE_BAD":      conn(map[string]string{}, "wrong"),
	}
	ex := New(Options{Connections: Connections{Getenv: func(k string) string { return env[k] }}})
	ctx := context.Background()
	sf.Script("COPY INTO", snowflaketest.Result{Rows: 5})
	sf.Script("DELETE", snowflaketest.Result{Rows: 2})
	sf.Script("SELECT COUNT", snowflaketest.Result{Rows: 1})
	sf.Script("SELECT * FROM MISSING", snowflaketest.Result{Fail: "SQL compilation error:\nObject 'MISSING' does not exist or not authorized."})
	sf.Script("CALL LONG", snowflaketest.Result{Hang: true})
	run := func(id string, spec dags.SQLSpec, timeout time.Duration) (executor.Event, string) {
		t.Helper()
		tr := sqlTry(t, id, spec)
		tr.Timeout = timeout
		if err := ex.Start(ctx, tr); err != nil {
			t.Fatal(err)
		}
		ev := final(t, ex, tr.Key)
		log, _ := os.ReadFile(tr.LogPath)
		return ev, string(log)
	}
	ev, log := run("load", dags.SQLSpec{ConnID: "snowflake", SplitStatements: true, Autocommit: true, Role: "LOADER",
		SQL:        []string{"COPY INTO raw.orders FROM @raw.stage/orders/2024-05-01/; DELETE FROM analytics.orders WHERE day = ?", "SELECT COUNT(*) FROM analytics.orders WHERE day = ?"},
		Parameters: []any{"2024-05-01"}}, 0)
	if ev.State != executor.Succeeded || !strings.Contains(log, "5 row(s) affected") || !strings.Contains(log, "2 row(s) affected") ||
		!strings.Contains(log, "1 row(s) returned") || !strings.Contains(log, "query id 01b2c3d4-0000-4242-") || strings.Contains(log, "s3cret-pw") {
		t.Fatalf("load: %+v\n%s", ev, log)
	}
	stmts := sf.Statements()
	if len(stmts) != 3 || stmts[1].Bindings["1"] == nil || !strings.Contains(mustJSON(stmts[1].Bindings["1"]), "2024-05-01") {
		t.Fatalf("statements: %+v", stmts)
	}
	// A statement written for Airflow (%(name)s) reaches Snowflake as ?
	// with its value bound, not pasted into the text.
	ev, log = run("named", dags.SQLSpec{ConnID: "snowflake", SQL: []string{"DELETE FROM analytics.orders WHERE day = %(day)s AND region = %(region)s"},
		NamedParameters: map[string]any{"day": "2024-05-02", "region": "emea"}}, 0)
	stmts = sf.Statements()
	last := stmts[len(stmts)-1]
	if ev.State != executor.Succeeded || last.SQL != "DELETE FROM analytics.orders WHERE day = ? AND region = ?" ||
		!strings.Contains(mustJSON(last.Bindings["1"]), "2024-05-02") || !strings.Contains(mustJSON(last.Bindings["2"]), "emea") {
		t.Fatalf("named parameters: %+v %+v\n%s", ev, last, log)
	}
	login := sf.Logins()[0]
	if login["LOGIN_NAME"] != "loader" || login["PASSWORD"] != "s3cret-pw" || login["ACCOUNT_NAME"] != "testacct" {
		t.Fatalf("login: %v", login)
	}
	ev, log = run("missing", dags.SQLSpec{ConnID: "snowflake", SQL: []string{"SELECT * FROM missing"}}, 0)
	if ev.State != executor.Failed || !strings.Contains(ev.Reason, "does not exist or not authorized") || !strings.Contains(ev.Reason, "002003") {
		t.Fatalf("failed query: %+v\n%s", ev, log)
	}
	// A query past execution_timeout is aborted on the service.
	before := sf.Aborts()
	ev, _ = run("long", dags.SQLSpec{ConnID: "snowflake", SQL: []string{"CALL long_procedure()"}}, 500*time.Millisecond)
	if ev.State != executor.Failed || !strings.Contains(ev.Reason, "execution_timeout") {
		t.Fatalf("cancelled: %+v", ev)
	}
	for i := 0; sf.Aborts() == before; i++ {
		if i == 100 {
			t.Fatal("the driver did not abort the query on the service")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Key-pair authentication: a JWT instead of a password.
	ev, _ = run("kp", dags.SQLSpec{ConnID: "snowflake_kp", SQL: []string{"SELECT COUNT(*) FROM t"}}, 0)
	logins := sf.Logins()
	kp := logins[len(logins)-1]
	if ev.State != executor.Succeeded || kp["AUTHENTICATOR"] != "SNOWFLAKE_JWT" || kp["TOKEN"] == nil || kp["PASSWORD"] != nil {
		t.Fatalf("key pair: %+v %v", ev, kp)
	}
	// The encrypted key signs the JWT once decrypted: the token verifies
	// with the key's public half and names its fingerprint.
	ev, log = run("enc", dags.SQLSpec{ConnID: "snowflake_enc", SQL: []string{"SELECT COUNT(*) FROM t"}}, 0)
	logins = sf.Logins()
	if ev.State != executor.Succeeded {
		t.Fatalf("encrypted key: %+v\n%s", ev, log)
	}
	token, _ := logins[len(logins)-1]["TOKEN"].(string)
	parts := strings.Split(token, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[len(parts)-1])
	if len(parts) != 3 || err != nil {
		t.Fatalf("token %q", token)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("the JWT is not signed by the decrypted key: %v", err)
	}
	for id, want := range map[string]string{"snowflake_enc_bad": "wrong passphrase", "snowflake_enc_none": "give its passphrase as the connection's password"} {
		ev, _ = run(id, dags.SQLSpec{ConnID: id, SQL: []string{"SELECT 1"}}, 0)
		if ev.State != executor.Failed || !strings.Contains(ev.Reason, want) || strings.Contains(ev.Reason, "not the passphrase") {
			t.Fatalf("%s: %+v", id, ev)
		}
	}
	ev, _ = run("badpw", dags.SQLSpec{ConnID: "snowflake_bad", SQL: []string{"SELECT COUNT(*) FROM t"}}, 0)
	if ev.State != executor.Failed || !strings.Contains(ev.Reason, "Incorrect username or password") || strings.Contains(ev.Reason, "wrong") {
		t.Fatalf("bad password: %+v", ev)
	}
	_ = strconv.Itoa
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSnowflakeConfig(t *testing.T) {
	conn, err := ParseConnection("sf", "snowflake://loader:pw@xy12345/RAW/PUBLIC?warehouse=LOAD_WH&role=LOADER")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := snowflakeConfig(conn, dags.SQLSpec{Schema: "STAGING"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Account != "xy12345" || cfg.Database != "RAW" || cfg.Schema != "STAGING" || cfg.Warehouse != "LOAD_WH" || cfg.Role != "LOADER" ||
		cfg.User != "loader" || cfg.Password != "pw" || cfg.Host != "" {
		t.Fatalf("config: %+v", cfg)
	}
	conn, _ = ParseConnection("sf", `{"conn_type": "snowflake", "host": "xy12345.eu-central-1.snowflakecomputing.com", "login": "u", "extra": {"database": "ANALYTICS", "private_key_content": "not a key"}}`)
	if _, err := snowflakeConfig(conn, dags.SQLSpec{}); err == nil || !strings.Contains(err.Error(), "not PEM") {
		t.Fatalf("bad key: %v", err)
	}
	conn.Extra["private_key_content"] = ""
	cfg, _ = snowflakeConfig(conn, dags.SQLSpec{})
	if cfg.Account != "xy12345.eu-central-1" || cfg.Host != conn.Host || cfg.Database != "ANALYTICS" {
		t.Fatalf("json config: %+v", cfg)
	}
}

func TestBindPyformat(t *testing.T) {
	for _, c := range []struct {
		q      string
		list   []any
		named  map[string]any
		engine string
		want   string
		args   []any
		err    string
	}{
		{q: "SELECT '100%'", engine: "postgres", want: "SELECT '100%'"},
		{q: "SELECT %s, %s", list: []any{1, "a"}, engine: "postgres", want: "SELECT $1, $2", args: []any{1, "a"}},
		{q: "SELECT %s, %s", list: []any{1, "a"}, engine: "snowflake", want: "SELECT ?, ?", args: []any{1, "a"}},
		{q: "SELECT %(a)s + %(b)s + %(a)s LIKE 'x%%'", named: map[string]any{"a": 1, "b": 2}, engine: "postgres",
			want: "SELECT $1 + $2 + $1 LIKE 'x%'", args: []any{1, 2}},
		{q: "SELECT %(a)s + %(a)s", named: map[string]any{"a": 1}, engine: "snowflake", want: "SELECT ? + ?", args: []any{1, 1}},
		{q: "SELECT $1 LIKE 'a%'", list: []any{"v"}, engine: "postgres", want: "SELECT $1 LIKE 'a%'", args: []any{"v"}},
		{q: "SELECT ?", list: []any{"v"}, engine: "snowflake", want: "SELECT ?", args: []any{"v"}},
		{q: "TRUNCATE t", list: []any{"v"}, engine: "postgres", want: "TRUNCATE t"},
		{q: "SELECT '%%s'", list: []any{"v"}, engine: "postgres", want: "SELECT '%%s'"},
		{q: "SELECT %s", list: []any{}, engine: "postgres", err: "more %s placeholders than parameters has values (0)"},
		{q: "SELECT %s", list: []any{1, 2}, engine: "postgres", err: "parameters has 2 values but the statement takes 1"},
		{q: "SELECT %s", named: map[string]any{"a": 1}, engine: "postgres", err: "parameters is a mapping"},
		{q: "SELECT %(a)s", list: []any{1}, engine: "postgres", err: "parameters is a list"},
		{q: "SELECT %(a", named: map[string]any{"a": 1}, engine: "postgres", err: "not closed by )s"},
		{q: "SELECT %s LIKE 'a%'", list: []any{1}, engine: "postgres", err: "a literal % is written %%"},
	} {
		got, args, err := bind(c.q, c.list, c.named, c.engine)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("bind(%q): %v, want an error with %q", c.q, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want || !reflect.DeepEqual(args, c.args) {
			t.Errorf("bind(%q, %v, %v) = %q %v %v, want %q %v", c.q, c.list, c.named, got, args, err, c.want, c.args)
		}
	}
}

// BranchSQLOperator against a real PostgreSQL: the first value of the
// query picks the branch, by Airflow's rules; no row or an unreadable
// value fails the try.
func TestBranchSQLOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "branching")
	env := map[string]string{"UPDRAFT_CONN_PG": strings.Replace(dsn, "postgres://", "postgresql://", 1)}
	ex := New(Options{Connections: Connections{Getenv: func(k string) string { return env[k] }}})
	run := func(query string) executor.Event {
		t.Helper()
		spec := dags.BranchSQLSpec{SQLSpec: dags.SQLSpec{ConnID: "pg", SQL: []string{query}, SplitStatements: true},
			IfTrue: []string{"load"}, IfFalse: []string{"skip_load"}}
		tr := try(t, "branch", spec)
		tr.XComPush = true
		if err := ex.Start(t.Context(), tr); err != nil {
			t.Fatal(err)
		}
		return final(t, ex, tr.Key)
	}
	for query, want := range map[string]string{
		"SELECT true":  "load",
		"SELECT 0":     "skip_load",
		"SELECT 'yes'": "load",
		"SELECT 'off'": "skip_load",
		"SELECT count(*) > 5 FROM generate_series(1, 3)": "skip_load",
	} {
		ev := run(query)
		if ev.State != executor.Succeeded || ev.Branch == nil || len(ev.Branch.Follow) != 1 || ev.Branch.Follow[0] != want ||
			string(ev.XCom["return_value"]) != `["`+want+`"]` {
			t.Errorf("%s: %+v, want to follow %s", query, ev, want)
		}
	}
	for query, why := range map[string]string{
		"SELECT 1 WHERE false": "no rows",
		"SELECT 'maybe'":       "unexpected query result",
	} {
		if ev := run(query); ev.State != executor.Failed || !strings.Contains(ev.Reason, why) {
			t.Errorf("%s: %+v, want a failure saying %q", query, ev, why)
		}
	}
}
