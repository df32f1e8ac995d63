// Package snowflaketest is a stand-in for Snowflake's service, for tests:
// Snowflake cannot run here. It answers, on loopback over HTTP, the REST
// calls the official Go driver (github.com/snowflakedb/gosnowflake) makes:
// login (password or key-pair JWT), query requests with their bindings
// (JSON result sets), query aborts, and session close. It is a
// protocol-level fake: statements are not run; tests script their results
// (rows affected, a failure, or a query that runs until it is cancelled).
package snowflaketest

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Statement is one query the server received.
type Statement struct {
	SQL      string
	Bindings map[string]any
	QueryID  string
	Aborted  bool
}

// Result scripts the answer to statements starting with a prefix.
type Result struct {
	Rows    int64  // rows affected (DML) or returned (SELECT: that many rows of one number column)
	Fail    string // a SQL compilation error message: the query fails
	Hang    bool   // the query runs until it is aborted
	Columns int    // SELECT: number of columns (default 1)
}

// Server is a fake Snowflake account.
type Server struct {
	srv *httptest.Server

	mu         sync.Mutex
	results    map[string]Result
	statements []Statement
	logins     []map[string]any
	aborts     int
	closed     int
	seq        int
	hung       chan struct{}
}

// Start serves the fake on loopback; it stops at cleanup.
func Start(tb testing.TB) *Server {
	s := &Server{results: map[string]Result{}, hung: make(chan struct{}, 16)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	tb.Cleanup(s.srv.Close)
	return s
}

// HostPort is where the driver must connect (protocol http).
func (s *Server) HostPort() (string, int) {
	u, _ := url.Parse(s.srv.URL)
	port, _ := strconv.Atoi(u.Port())
	return u.Hostname(), port
}

// Script sets the result of statements starting with prefix (upper case
// compared).
func (s *Server) Script(prefix string, r Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.results[strings.ToUpper(prefix)] = r
}

// Statements returns the queries received, in order.
func (s *Server) Statements() []Statement {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Statement(nil), s.statements...)
}

// Logins returns the login requests' data (LOGIN_NAME, PASSWORD or TOKEN,
// ACCOUNT_NAME, AUTHENTICATOR, ...).
func (s *Server) Logins() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.logins...)
}

// Hung reports each query that started hanging.
func (s *Server) Hung() <-chan struct{} { return s.hung }

// Aborts counts abort requests.
func (s *Server) Aborts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aborts
}

func body(r *http.Request) []byte {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		if gz, err := gzip.NewReader(r.Body); err == nil {
			rd = gz
		}
	}
	b, _ := io.ReadAll(io.LimitReader(rd, 1<<20))
	return b
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/session/v1/login-request":
		var req struct {
			Data map[string]any `json:"data"`
		}
		_ = json.Unmarshal(body(r), &req)
		s.mu.Lock()
		s.logins = append(s.logins, req.Data)
		s.mu.Unlock()
		if req.Data["PASSWORD"] == "wrong" {
			reply(w, map[string]any{"success": false, "code": "390100", "message": "Incorrect username or password was specified.", "data": nil})
			return
		}
		reply(w, map[string]any{"success": true, "data": map[string]any{
			"token": "session-token", "validityInSeconds": 3600, "masterToken": "master-token", "masterValidityInSeconds": 14400,
			"sessionId": 4242, "serverVersion": "8.40.0", "parameters": []any{},
			"sessionInfo": map[string]any{"databaseName": "RAW", "schemaName": "PUBLIC", "warehouseName": "LOAD_WH", "roleName": "LOADER"},
		}})
	case "/queries/v1/query-request":
		s.query(w, r)
	case "/queries/v1/abort-request":
		s.mu.Lock()
		s.aborts++
		for i := range s.statements {
			if s.statements[i].QueryID == "hanging" {
				s.statements[i].Aborted = true
			}
		}
		s.mu.Unlock()
		reply(w, map[string]any{"success": true, "data": nil})
	case "/session":
		s.mu.Lock()
		s.closed++
		s.mu.Unlock()
		reply(w, map[string]any{"success": true, "data": nil})
	default: // telemetry, heartbeat: accepted
		reply(w, map[string]any{"success": true, "data": nil})
	}
}

func (s *Server) query(w http.ResponseWriter, r *http.Request) {
	var req struct {
		SQLText  string         `json:"sqlText"`
		Bindings map[string]any `json:"bindings"`
	}
	_ = json.Unmarshal(body(r), &req)
	s.mu.Lock()
	s.seq++
	qid := "01b2c3d4-0000-4242-0000-" + strconv.Itoa(100000+s.seq)
	var res Result
	upper := strings.ToUpper(strings.TrimSpace(req.SQLText))
	best := -1
	for prefix, rr := range s.results {
		if strings.HasPrefix(upper, prefix) && len(prefix) > best {
			res, best = rr, len(prefix)
		}
	}
	st := Statement{SQL: req.SQLText, Bindings: req.Bindings, QueryID: qid}
	if res.Hang {
		st.QueryID = "hanging"
	}
	s.statements = append(s.statements, st)
	s.mu.Unlock()
	switch {
	case res.Hang:
		s.hung <- struct{}{}
		<-r.Context().Done() // until the driver gives up on it (and aborts it)
		return
	case res.Fail != "":
		reply(w, map[string]any{"success": false, "code": "002003", "message": res.Fail,
			"data": map[string]any{"queryId": qid, "sqlState": "42S02", "errorCode": "002003"}})
		return
	}
	isSelect := strings.HasPrefix(upper, "SELECT") || strings.HasPrefix(upper, "WITH") || strings.HasPrefix(upper, "SHOW")
	data := map[string]any{"queryId": qid, "queryResultFormat": "json", "parameters": []any{}, "finalDatabaseName": "RAW"}
	if isSelect {
		cols := max(res.Columns, 1)
		var rowtype []map[string]any
		for c := 0; c < cols; c++ {
			rowtype = append(rowtype, map[string]any{"name": "C" + strconv.Itoa(c+1), "type": "fixed", "nullable": true, "precision": 38, "scale": 0, "length": nil, "byteLength": nil})
		}
		var rows [][]*string
		for i := int64(0); i < res.Rows; i++ {
			row := make([]*string, cols)
			for c := range row {
				v := strconv.FormatInt(i+1, 10)
				row[c] = &v
			}
			rows = append(rows, row)
		}
		data["rowtype"], data["rowset"], data["total"], data["returned"], data["statementTypeId"] = rowtype, rows, res.Rows, res.Rows, 0x1000
	} else {
		n := strconv.FormatInt(res.Rows, 10)
		data["rowtype"] = []map[string]any{{"name": "number of rows affected", "type": "fixed", "nullable": false, "precision": 19, "scale": 0}}
		data["rowset"], data["total"], data["returned"], data["statementTypeId"] = [][]*string{{&n}}, 1, 1, 0x3000
	}
	reply(w, map[string]any{"success": true, "data": data, "code": nil, "message": nil})
}
