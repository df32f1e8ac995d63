package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"updraft/dags"
)

// Errors callers can test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	// ErrInvalidFilter marks a query the store cannot run as asked (an
	// unknown order_by field).
	ErrInvalidFilter = errors.New("invalid filter")
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is the metadata database. It is safe for concurrent use, except
// for a Store bound to a transaction (the one InTx passes), which belongs
// to its caller until InTx returns.
type Store struct {
	db    *sql.DB
	tx    *sql.Tx // set on a Store bound to a transaction
	stmts *stmtCache
}

// stmtCache keeps prepared statements by query text: SQLite would
// otherwise compile every statement again on every call.
type stmtCache struct {
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	single bool // the database has one connection
}

func (s *Store) prepare(ctx context.Context, q string) (*sql.Stmt, error) {
	s.stmts.mu.Lock()
	stmt, ok := s.stmts.m[q]
	s.stmts.mu.Unlock()
	if !ok && s.tx != nil && s.stmts.single {
		// The transaction holds the only connection: prepare on it (the
		// statement ends with the transaction) rather than wait for another.
		return s.tx.PrepareContext(ctx, q)
	}
	if !ok {
		var err error
		if stmt, err = s.db.PrepareContext(ctx, q); err != nil {
			return nil, err
		}
		s.stmts.mu.Lock()
		if other, raced := s.stmts.m[q]; raced {
			stmt.Close()
			stmt = other
		} else {
			s.stmts.m[q] = stmt
		}
		s.stmts.mu.Unlock()
	}
	if s.tx != nil {
		return s.tx.StmtContext(ctx, stmt), nil
	}
	return stmt, nil
}

func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	stmt, err := s.prepare(ctx, q)
	if err != nil {
		return nil, err
	}
	return stmt.ExecContext(ctx, args...)
}

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	stmt, err := s.prepare(ctx, q)
	if err != nil {
		return nil, err
	}
	return stmt.QueryContext(ctx, args...)
}

// queryRow runs a one-row query; a preparation error surfaces on Scan.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	stmt, err := s.prepare(ctx, q)
	if err != nil {
		if s.tx != nil {
			return s.tx.QueryRowContext(ctx, q, args...)
		}
		return s.db.QueryRowContext(ctx, q, args...)
	}
	return stmt.QueryRowContext(ctx, args...)
}

// Open opens the database named by dsn: "sqlite:PATH" (a file, created if
// missing) or "sqlite::memory:". It does not migrate; call Migrate.
func Open(ctx context.Context, dsn string) (*Store, error) {
	path, ok := strings.CutPrefix(dsn, "sqlite:")
	if !ok {
		return nil, fmt.Errorf("unsupported database %q: use sqlite:PATH", dsn)
	}
	if path == "" {
		return nil, fmt.Errorf("database %q: empty path", dsn)
	}
	conn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	if path == ":memory:" {
		conn = "file::memory:?_pragma=busy_timeout(10000)&_txlock=immediate"
	}
	db, err := sql.Open("sqlite", conn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dsn, err)
	}
	// SQLite has one writer at a time (transactions begin IMMEDIATE, and
	// wait for each other up to the busy timeout). A second connection lets
	// reads and statement preparation go on while a transaction holds the
	// first. An in-memory database must stay on one connection to stay one
	// database.
	db.SetMaxOpenConns(2)
	if path == ":memory:" {
		db.SetMaxOpenConns(1)
	}
	// Switching a new database to WAL takes a lock the busy timeout does
	// not wait for: when several processes open it at once, try again.
	for attempt := 0; ; attempt++ {
		err = db.PingContext(ctx)
		if err == nil {
			break
		}
		if attempt == 100 || !strings.Contains(err.Error(), "SQLITE_BUSY") {
			db.Close()
			return nil, fmt.Errorf("open %s: %w", dsn, err)
		}
		select {
		case <-ctx.Done():
			db.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return &Store{db: db, stmts: &stmtCache{m: map[string]*sql.Stmt{}, single: path == ":memory:"}}, nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.stmts.mu.Lock()
	for _, stmt := range s.stmts.m {
		stmt.Close()
	}
	s.stmts.mu.Unlock()
	return s.db.Close()
}

// Migrate applies every migration not applied yet, in order. Each is
// checked and applied in one write transaction, so several processes may
// migrate at once: the first applies, the others find it applied.
func (s *Store) Migrate(ctx context.Context) error {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: bad name", base)
		}
		body, _ := migrationFS.ReadFile(name)
		// Schema statements run on the transaction itself, uncached: the
		// other connection cannot see tables the transaction just created.
		err = s.InTx(ctx, func(tx *Store) error {
			run := func(q string, args ...any) error {
				_, err := tx.tx.ExecContext(ctx, q, args...)
				return err
			}
			if err := run(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
				return err
			}
			var n int
			if err := tx.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil || n > 0 {
				return err
			}
			for _, stmt := range splitSQL(string(body)) {
				if err := run(stmt); err != nil {
					return fmt.Errorf("%s: %w", base, err)
				}
			}
			return run(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, ts(time.Now()))
		})
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}

// splitSQL splits a migration into statements (no semicolons in literals).
func splitSQL(body string) []string {
	var out []string
	for _, stmt := range strings.Split(body, ";") {
		var lines []string
		for _, l := range strings.Split(stmt, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			out = append(out, strings.Join(lines, "\n"))
		}
	}
	return out
}

// InTx runs fn with a Store bound to one transaction: everything fn does
// commits together, or not at all if fn fails. Inside a transaction InTx
// just runs fn.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	if s.tx != nil {
		return fn(s)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&Store{db: s.db, tx: tx, stmts: s.stmts}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// timeLayout is fixed-width so that times compare correctly as strings.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func ts(t time.Time) string { return t.UTC().Format(timeLayout) }

func tsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

func parseTS(s string) time.Time {
	t, _ := time.Parse(timeLayout, s)
	return t
}

func parseTSPtr(s sql.NullString) *time.Time {
	if !s.Valid {
		return nil
	}
	t := parseTS(s.String)
	return &t
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// DAGRecord is one loaded DAG as the store keeps it.
type DAGRecord struct {
	ID                 string
	File               string
	Version            string // dags.DAG.Hash
	Source             string // dags.EncodeVersion: the version, readable back
	GitRevision        string // the commit the version was first seen in
	PausedUponCreation bool
}

// DAGRow is a DAG's stored state.
type DAGRow struct {
	ID         string
	Paused     bool
	Active     bool
	File       string
	Version    string
	LastParsed time.Time
}

// SyncDAGs records the DAGs of a load: new DAGs are created (paused as
// their file says), changed ones get a new version, and with
// deactivateMissing every other DAG becomes inactive (history is kept).
func (s *Store) SyncDAGs(ctx context.Context, now time.Time, recs []DAGRecord, deactivateMissing bool) error {
	return s.InTx(ctx, func(tx *Store) error {
		for _, r := range recs {
			if _, err := tx.exec(ctx, `INSERT INTO dag_versions (dag_id, version, fileloc, source, created_at, git_revision)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dag_id, version) DO UPDATE SET source = excluded.source`, r.ID, r.Version, r.File, r.Source, ts(now), r.GitRevision); err != nil {
				return err
			}
			if _, err := tx.exec(ctx, `INSERT INTO dags (dag_id, is_paused, is_active, fileloc, current_version, last_parsed_at)
				VALUES (?, ?, 1, ?, ?, ?)
				ON CONFLICT (dag_id) DO UPDATE SET is_active = 1, fileloc = excluded.fileloc,
					current_version = excluded.current_version, last_parsed_at = excluded.last_parsed_at`,
				r.ID, r.PausedUponCreation, r.File, r.Version, ts(now)); err != nil {
				return err
			}
		}
		if !deactivateMissing {
			return nil
		}
		rows, err := tx.query(ctx, `SELECT dag_id FROM dags WHERE is_active = 1`)
		if err != nil {
			return err
		}
		var gone []string
		keep := map[string]bool{}
		for _, r := range recs {
			keep[r.ID] = true
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			if !keep[id] {
				gone = append(gone, id)
			}
		}
		rows.Close()
		for _, id := range gone {
			if _, err := tx.exec(ctx, `UPDATE dags SET is_active = 0 WHERE dag_id = ?`, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// DAGVersionSource returns the stored source of one DAG version, or
// ErrNotFound.
func (s *Store) DAGVersionSource(ctx context.Context, id, version string) (string, error) {
	var src string
	err := s.queryRow(ctx, `SELECT source FROM dag_versions WHERE dag_id = ? AND version = ?`, id, version).Scan(&src)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("dag %q version %q: %w", id, version, ErrNotFound)
	}
	return src, err
}

const dagCols = `dag_id, is_paused, is_active, fileloc, current_version, last_parsed_at`

func scanDAG(sc interface{ Scan(...any) error }) (DAGRow, error) {
	var d DAGRow
	var parsed string
	err := sc.Scan(&d.ID, &d.Paused, &d.Active, &d.File, &d.Version, &parsed)
	d.LastParsed = parseTS(parsed)
	return d, err
}

// DAG returns one DAG's row, or ErrNotFound.
func (s *Store) DAG(ctx context.Context, id string) (DAGRow, error) {
	d, err := scanDAG(s.queryRow(ctx, `SELECT `+dagCols+` FROM dags WHERE dag_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("dag %q: %w", id, ErrNotFound)
	}
	return d, err
}

// DAGs returns every DAG row, by id.
func (s *Store) DAGs(ctx context.Context) ([]DAGRow, error) {
	rows, err := s.query(ctx, `SELECT `+dagCols+` FROM dags ORDER BY dag_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DAGRow
	for rows.Next() {
		d, err := scanDAG(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// SetPaused pauses or unpauses a DAG; ErrNotFound if it does not exist.
func (s *Store) SetPaused(ctx context.Context, id string, paused bool) error {
	res, err := s.exec(ctx, `UPDATE dags SET is_paused = ? WHERE dag_id = ?`, paused, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("dag %q: %w", id, ErrNotFound)
	}
	return nil
}

// Run is a DAG run.
type Run struct {
	ID              int64
	DagID, RunID    string
	RunType         string
	LogicalDate     time.Time
	Interval        dags.DataInterval
	Conf            map[string]any
	State           dags.RunState
	QueuedAt        time.Time
	StartDate       *time.Time
	EndDate         *time.Time
	DAGVersion      string
	GitRevision     string // the commit the run's DAG version came from
	ExternalTrigger bool
	Note            string
}

// TaskInstance is one task of one run; its tries are in Try rows.
type TaskInstance struct {
	DagID, RunID, TaskID string
	State                dags.TaskState
	TryNumber            int // tries started so far
	MaxTries             int // retries allowed (Airflow's max_tries)
	Operator, Pool       string
	PoolSlots            int
	PriorityWeight       int
	QueuedAt             *time.Time
	StartDate, EndDate   *time.Time
	NextTryAt            *time.Time // when an up_for_retry instance may run again
}

// Key identifies a task instance.
func (ti TaskInstance) Key() TIKey { return TIKey{ti.DagID, ti.RunID, ti.TaskID} }

// TIKey identifies a task instance.
type TIKey struct{ DagID, RunID, TaskID string }

func (k TIKey) String() string { return k.DagID + "/" + k.RunID + "/" + k.TaskID }

// CreateRun inserts a run and its task instances atomically. A run with the
// same run id or logical date fails with ErrConflict.
func (s *Store) CreateRun(ctx context.Context, r Run, tis []TaskInstance) error {
	conf := r.Conf
	if conf == nil {
		conf = map[string]any{}
	}
	confJSON, err := json.Marshal(conf)
	if err != nil {
		return fmt.Errorf("run conf: %w", err)
	}
	err = s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.exec(ctx, `INSERT INTO dag_runs (dag_id, run_id, run_type, logical_date, data_interval_start,
			data_interval_end, conf, state, queued_at, start_date, end_date, dag_version, external_trigger, note, git_revision)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.DagID, r.RunID, r.RunType, ts(r.LogicalDate), ts(r.Interval.Start), ts(r.Interval.End), string(confJSON),
			string(r.State), ts(r.QueuedAt), tsPtr(r.StartDate), tsPtr(r.EndDate), r.DAGVersion, r.ExternalTrigger, r.Note, r.GitRevision); err != nil {
			return err
		}
		for _, ti := range tis {
			if err := insertTI(ctx, tx, ti); err != nil {
				return err
			}
		}
		return nil
	})
	if isUnique(err) {
		return fmt.Errorf("dag %q run %q at %s: %w", r.DagID, r.RunID, r.LogicalDate.Format(time.RFC3339), ErrConflict)
	}
	return err
}

func insertTI(ctx context.Context, tx *Store, ti TaskInstance) error {
	_, err := tx.exec(ctx, `INSERT INTO task_instances (dag_id, run_id, task_id, state, try_number, max_tries,
		operator, pool, pool_slots, priority_weight, queued_at, start_date, end_date, next_try_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ti.DagID, ti.RunID, ti.TaskID, string(ti.State), ti.TryNumber, ti.MaxTries, ti.Operator, ti.Pool, ti.PoolSlots,
		ti.PriorityWeight, tsPtr(ti.QueuedAt), tsPtr(ti.StartDate), tsPtr(ti.EndDate), tsPtr(ti.NextTryAt))
	return err
}

// AddTaskInstances adds task instances to an existing run (tasks that
// appeared in a newer DAG version); existing ones are left alone.
func (s *Store) AddTaskInstances(ctx context.Context, tis []TaskInstance) error {
	return s.InTx(ctx, func(tx *Store) error {
		for _, ti := range tis {
			if err := insertTI(ctx, tx, ti); err != nil && !isUnique(err) {
				return err
			}
		}
		return nil
	})
}

const runCols = `id, dag_id, run_id, run_type, logical_date, data_interval_start, data_interval_end, conf, state,
	queued_at, start_date, end_date, dag_version, external_trigger, note, git_revision`

func scanRun(sc interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var logical, start, end, conf, state, queued string
	var started, ended sql.NullString
	err := sc.Scan(&r.ID, &r.DagID, &r.RunID, &r.RunType, &logical, &start, &end, &conf, &state, &queued,
		&started, &ended, &r.DAGVersion, &r.ExternalTrigger, &r.Note, &r.GitRevision)
	if err != nil {
		return r, err
	}
	r.LogicalDate, r.Interval = parseTS(logical), dags.DataInterval{Start: parseTS(start), End: parseTS(end)}
	r.State, r.QueuedAt = dags.RunState(state), parseTS(queued)
	r.StartDate, r.EndDate = parseTSPtr(started), parseTSPtr(ended)
	dec := json.NewDecoder(strings.NewReader(conf))
	dec.UseNumber()
	if err := dec.Decode(&r.Conf); err != nil {
		return r, fmt.Errorf("run %s conf: %w", r.RunID, err)
	}
	r.Conf, _ = dags.JSONNumbers(r.Conf).(map[string]any)
	return r, nil
}

// Run returns one run, or ErrNotFound.
func (s *Store) Run(ctx context.Context, dagID, runID string) (Run, error) {
	r, err := scanRun(s.queryRow(ctx, `SELECT `+runCols+` FROM dag_runs WHERE dag_id = ? AND run_id = ?`, dagID, runID))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("dag %q run %q: %w", dagID, runID, ErrNotFound)
	}
	return r, err
}

// RunFilter selects runs. Zero fields do not filter. Limit 0 means all.
type RunFilter struct {
	DagID   string
	DagIDs  []string
	States  []dags.RunState
	RunType string
	// Time ranges, inclusive; nil leaves that side open.
	LogicalGTE, LogicalLTE *time.Time
	StartGTE, StartLTE     *time.Time
	EndGTE, EndLTE         *time.Time
	// OrderBy is one of RunOrderColumns, "-" in front for descending;
	// "" means newest logical date first.
	OrderBy       string
	Limit, Offset int
}

// RunOrderColumns are the fields runs can be ordered by (API names).
var RunOrderColumns = map[string]string{
	"id": "id", "dag_id": "dag_id", "dag_run_id": "run_id", "run_id": "run_id", "state": "state",
	"logical_date": "logical_date", "execution_date": "logical_date", "start_date": "start_date",
	"end_date": "end_date", "run_type": "run_type", "data_interval_start": "data_interval_start",
	"data_interval_end": "data_interval_end",
}

// where builds a WHERE clause from conditions and their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) in(col string, vals []string) {
	if len(vals) == 0 {
		return
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	w.add(col+` IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")+`)`, args...)
}

func (w *where) between(col string, gte, lte *time.Time) {
	if gte != nil {
		w.add(col+` >= ?`, ts(*gte))
	}
	if lte != nil {
		w.add(col+` <= ?`, ts(*lte))
	}
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(w.conds, ` AND `)
}

// orderBy returns an ORDER BY clause for an API order_by value, or an
// error naming the allowed fields.
func orderBy(v string, cols map[string]string, tie string) (string, error) {
	desc := strings.HasPrefix(v, "-")
	col, ok := cols[strings.TrimPrefix(v, "-")]
	if !ok {
		names := make([]string, 0, len(cols))
		for k := range cols {
			names = append(names, k)
		}
		sort.Strings(names)
		return "", fmt.Errorf("cannot order by %q; use one of %s: %w", v, strings.Join(names, ", "), ErrInvalidFilter)
	}
	dir := ` ASC`
	if desc {
		dir = ` DESC`
	}
	return ` ORDER BY ` + col + dir + `, ` + tie + dir, nil
}

func (f RunFilter) where() *where {
	w := &where{}
	if f.DagID != "" {
		w.add(`dag_id = ?`, f.DagID)
	}
	w.in(`dag_id`, f.DagIDs)
	if f.RunType != "" {
		w.add(`run_type = ?`, f.RunType)
	}
	states := make([]string, len(f.States))
	for i, st := range f.States {
		states[i] = string(st)
	}
	w.in(`state`, states)
	w.between(`logical_date`, f.LogicalGTE, f.LogicalLTE)
	w.between(`start_date`, f.StartGTE, f.StartLTE)
	w.between(`end_date`, f.EndGTE, f.EndLTE)
	return w
}

func limitOffset(limit, offset int) string {
	q := ""
	if limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(limit)
	} else if offset > 0 {
		q += ` LIMIT -1` // SQLite needs a limit before an offset
	}
	if offset > 0 {
		q += ` OFFSET ` + strconv.Itoa(offset)
	}
	return q
}

// Runs returns the selected runs, newest logical date first unless
// f.OrderBy says otherwise.
func (s *Store) Runs(ctx context.Context, f RunFilter) ([]Run, error) {
	w := f.where()
	order := ` ORDER BY logical_date DESC, id DESC`
	if f.OrderBy != "" {
		var err error
		if order, err = orderBy(f.OrderBy, RunOrderColumns, "id"); err != nil {
			return nil, err
		}
	}
	rows, err := s.query(ctx, `SELECT `+runCols+` FROM dag_runs`+w.String()+order+limitOffset(f.Limit, f.Offset), w.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// CountRuns returns how many runs f selects, ignoring its limit and offset.
func (s *Store) CountRuns(ctx context.Context, f RunFilter) (int, error) {
	w := f.where()
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM dag_runs`+w.String(), w.args...).Scan(&n)
	return n, err
}

// TIFilter selects task instances across runs. Zero fields do not filter.
type TIFilter struct {
	DagIDs   []string
	RunID    string
	TaskIDs  []string
	States   []dags.TaskState
	Pools    []string
	StartGTE *time.Time
	StartLTE *time.Time
	EndGTE   *time.Time
	EndLTE   *time.Time
	// Logical date range of the task instances' runs.
	LogicalGTE, LogicalLTE *time.Time
	Limit, Offset          int
}

func (f TIFilter) where() *where {
	w := &where{}
	w.in(`ti.dag_id`, f.DagIDs)
	if f.RunID != "" {
		w.add(`ti.run_id = ?`, f.RunID)
	}
	w.in(`ti.task_id`, f.TaskIDs)
	states := make([]string, len(f.States))
	for i, st := range f.States {
		states[i] = string(st)
	}
	w.in(`ti.state`, states)
	w.in(`ti.pool`, f.Pools)
	w.between(`ti.start_date`, f.StartGTE, f.StartLTE)
	w.between(`ti.end_date`, f.EndGTE, f.EndLTE)
	w.between(`r.logical_date`, f.LogicalGTE, f.LogicalLTE)
	return w
}

const tiJoin = ` FROM task_instances ti JOIN dag_runs r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id`

// FindTaskInstances returns the selected task instances ordered by DAG,
// run logical date and task, with how many there are in all.
func (s *Store) FindTaskInstances(ctx context.Context, f TIFilter) ([]TaskInstance, int, error) {
	w := f.where()
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*)`+tiJoin+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	cols := `ti.` + strings.ReplaceAll(strings.Join(strings.Fields(tiCols), " "), ", ", ", ti.")
	rows, err := s.query(ctx, `SELECT `+cols+tiJoin+w.String()+
		` ORDER BY ti.dag_id, r.logical_date, ti.task_id`+limitOffset(f.Limit, f.Offset), w.args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []TaskInstance
	for rows.Next() {
		ti, err := scanTI(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, ti)
	}
	return out, total, rows.Err()
}

// RecentRuns returns the newest perDAG runs of each of the DAGs (newest
// first): one index seek per DAG, so the cost follows the DAGs asked for,
// not the history kept.
func (s *Store) RecentRuns(ctx context.Context, dagIDs []string, perDAG int) (map[string][]Run, error) {
	out := make(map[string][]Run, len(dagIDs))
	for _, id := range dagIDs {
		runs, err := s.Runs(ctx, RunFilter{DagID: id, Limit: perDAG})
		if err != nil {
			return nil, err
		}
		out[id] = runs
	}
	return out, nil
}

// LastScheduledRuns is LastScheduledRun for each of the DAGs; DAGs without
// one are missing from the map.
func (s *Store) LastScheduledRuns(ctx context.Context, dagIDs []string) (map[string]Run, error) {
	out := make(map[string]Run, len(dagIDs))
	for _, id := range dagIDs {
		r, err := s.LastScheduledRun(ctx, id)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out[id] = *r
		}
	}
	return out, nil
}

// LastScheduledRun returns the DAG's latest scheduled or backfill run, the
// "last automated data interval" timetables continue from, or nil.
func (s *Store) LastScheduledRun(ctx context.Context, dagID string) (*Run, error) {
	r, err := scanRun(s.queryRow(ctx, `SELECT `+runCols+` FROM dag_runs WHERE dag_id = ? AND run_type IN ('scheduled', 'backfill')
		ORDER BY logical_date DESC LIMIT 1`, dagID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// SetRunState moves a run from one state to another (compare-and-swap) and
// reports whether it did. Entering running sets start_date (first time
// only); a finished state sets end_date; queued clears end_date.
func (s *Store) SetRunState(ctx context.Context, dagID, runID string, from, to dags.RunState, at time.Time) (bool, error) {
	q := `UPDATE dag_runs SET state = ?`
	args := []any{string(to)}
	switch {
	case to == dags.RunRunning:
		q += `, start_date = COALESCE(start_date, ?), end_date = NULL`
		args = append(args, ts(at))
	case to.Finished():
		q += `, end_date = ?`
		args = append(args, ts(at))
	case to == dags.RunQueued:
		q += `, end_date = NULL, queued_at = ?`
		args = append(args, ts(at))
	}
	q += ` WHERE dag_id = ? AND run_id = ? AND state = ?`
	args = append(args, dagID, runID, string(from))
	res, err := s.exec(ctx, q, args...)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

const tiCols = `dag_id, run_id, task_id, state, try_number, max_tries, operator, pool, pool_slots, priority_weight,
	queued_at, start_date, end_date, next_try_at`

func scanTI(sc interface{ Scan(...any) error }) (TaskInstance, error) {
	var ti TaskInstance
	var state string
	var queued, start, end, next sql.NullString
	err := sc.Scan(&ti.DagID, &ti.RunID, &ti.TaskID, &state, &ti.TryNumber, &ti.MaxTries, &ti.Operator, &ti.Pool,
		&ti.PoolSlots, &ti.PriorityWeight, &queued, &start, &end, &next)
	ti.State = dags.TaskState(state)
	ti.QueuedAt, ti.StartDate, ti.EndDate, ti.NextTryAt = parseTSPtr(queued), parseTSPtr(start), parseTSPtr(end), parseTSPtr(next)
	return ti, err
}

func (s *Store) queryTIs(ctx context.Context, q string, args ...any) ([]TaskInstance, error) {
	rows, err := s.query(ctx, `SELECT `+tiCols+` FROM task_instances `+q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TaskInstance
	for rows.Next() {
		ti, err := scanTI(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ti)
	}
	return out, rows.Err()
}

// TaskInstances returns a run's task instances, by task id.
func (s *Store) TaskInstances(ctx context.Context, dagID, runID string) ([]TaskInstance, error) {
	return s.queryTIs(ctx, `WHERE dag_id = ? AND run_id = ? ORDER BY task_id`, dagID, runID)
}

// TaskInstancesOfRuns returns the task instances of some runs of a DAG
// (the grid's columns), by run and task, with only what the grid shows:
// ids, state, tries and start and end dates.
func (s *Store) TaskInstancesOfRuns(ctx context.Context, dagID string, runIDs []string) ([]TaskInstance, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	w := &where{}
	w.add(`dag_id = ?`, dagID)
	w.in(`run_id`, runIDs)
	rows, err := s.query(ctx, `SELECT run_id, task_id, state, try_number, max_tries, start_date, end_date FROM task_instances`+
		w.String()+` ORDER BY run_id, task_id`, w.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TaskInstance
	for rows.Next() {
		ti := TaskInstance{DagID: dagID}
		var state string
		var start, end sql.NullString
		if err := rows.Scan(&ti.RunID, &ti.TaskID, &state, &ti.TryNumber, &ti.MaxTries, &start, &end); err != nil {
			return nil, err
		}
		ti.State, ti.StartDate, ti.EndDate = dags.TaskState(state), parseTSPtr(start), parseTSPtr(end)
		out = append(out, ti)
	}
	return out, rows.Err()
}

// TaskInstance returns one task instance, or ErrNotFound.
func (s *Store) TaskInstance(ctx context.Context, k TIKey) (TaskInstance, error) {
	tis, err := s.queryTIs(ctx, `WHERE dag_id = ? AND run_id = ? AND task_id = ?`, k.DagID, k.RunID, k.TaskID)
	if err != nil {
		return TaskInstance{}, err
	}
	if len(tis) == 0 {
		return TaskInstance{}, fmt.Errorf("task instance %s: %w", k, ErrNotFound)
	}
	return tis[0], nil
}

// TaskInstancesInState returns every task instance in one of the states.
func (s *Store) TaskInstancesInState(ctx context.Context, states ...dags.TaskState) ([]TaskInstance, error) {
	args := make([]any, len(states))
	for i, st := range states {
		args[i] = string(st)
	}
	return s.queryTIs(ctx, `WHERE state IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(states)), ", ")+`) ORDER BY dag_id, run_id, task_id`, args...)
}

// UpdateTaskInstance writes ti's state and fields if the stored state is
// still from (compare-and-swap) and reports whether it did. The change must
// be allowed by the transition table unless from equals ti.State.
func (s *Store) UpdateTaskInstance(ctx context.Context, ti TaskInstance, from dags.TaskState) (bool, error) {
	if from != ti.State {
		if err := dags.CheckTransition(from, ti.State); err != nil {
			return false, fmt.Errorf("task instance %s: %w", ti.Key(), err)
		}
	}
	res, err := s.exec(ctx, `UPDATE task_instances SET state = ?, try_number = ?, max_tries = ?, queued_at = ?,
		start_date = ?, end_date = ?, next_try_at = ? WHERE dag_id = ? AND run_id = ? AND task_id = ? AND state = ?`,
		string(ti.State), ti.TryNumber, ti.MaxTries, tsPtr(ti.QueuedAt), tsPtr(ti.StartDate), tsPtr(ti.EndDate),
		tsPtr(ti.NextTryAt), ti.DagID, ti.RunID, ti.TaskID, string(from))
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// MarkRunning moves a task instance from queued to running for the given
// try (compare-and-swap on state and try number) and reports whether it did.
func (s *Store) MarkRunning(ctx context.Context, k TIKey, try int, at time.Time) (bool, error) {
	res, err := s.exec(ctx, `UPDATE task_instances SET state = 'running', start_date = ?
		WHERE dag_id = ? AND run_id = ? AND task_id = ? AND state = 'queued' AND try_number = ?`,
		ts(at), k.DagID, k.RunID, k.TaskID, try)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Try is one attempt at running a task instance.
type Try struct {
	TIKey
	TryNumber int
	State     dags.TaskState
	StartDate time.Time
	EndDate   *time.Time
	ExitCode  *int
	Reason    string
	Executor  string
	Handle    string // the executor's handle: a pid, a pod name
	LogPath   string
	Hostname  string
	Rendered  string // the rendered fields as JSON
}

// StartTry records that try number t.TryNumber began. A try is recorded
// once: starting the same try twice fails with ErrConflict, which is what
// keeps a restarted scheduler from running a try twice.
func (s *Store) StartTry(ctx context.Context, t Try) error {
	_, err := s.exec(ctx, `INSERT INTO task_tries (dag_id, run_id, task_id, try_number, state, start_date,
		executor, handle, log_path, hostname, rendered) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.DagID, t.RunID, t.TaskID, t.TryNumber, string(t.State), ts(t.StartDate), t.Executor, t.Handle, t.LogPath, t.Hostname, t.Rendered)
	if isUnique(err) {
		return fmt.Errorf("try %d of %s: %w", t.TryNumber, t.TIKey, ErrConflict)
	}
	return err
}

// SetTryHandle records the executor's handle for a try (pid, pod name).
func (s *Store) SetTryHandle(ctx context.Context, k TIKey, try int, handle string) error {
	_, err := s.exec(ctx, `UPDATE task_tries SET handle = ? WHERE dag_id = ? AND run_id = ? AND task_id = ? AND try_number = ?`,
		handle, k.DagID, k.RunID, k.TaskID, try)
	return err
}

// FinishTry records a try's outcome. It only changes a try that is still
// unfinished, and reports whether it did.
func (s *Store) FinishTry(ctx context.Context, k TIKey, try int, state dags.TaskState, end time.Time, exitCode *int, reason string) (bool, error) {
	res, err := s.exec(ctx, `UPDATE task_tries SET state = ?, end_date = ?, exit_code = ?, reason = ?
		WHERE dag_id = ? AND run_id = ? AND task_id = ? AND try_number = ? AND end_date IS NULL`,
		string(state), ts(end), exitCode, reason, k.DagID, k.RunID, k.TaskID, try)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Tries returns every try of a task instance, oldest first.
func (s *Store) Tries(ctx context.Context, k TIKey) ([]Try, error) {
	rows, err := s.query(ctx, `SELECT try_number, state, start_date, end_date, exit_code, reason, executor, handle,
		log_path, hostname, rendered FROM task_tries WHERE dag_id = ? AND run_id = ? AND task_id = ? ORDER BY try_number`,
		k.DagID, k.RunID, k.TaskID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Try
	for rows.Next() {
		t := Try{TIKey: k}
		var state, start string
		var end sql.NullString
		var code sql.NullInt64
		if err := rows.Scan(&t.TryNumber, &state, &start, &end, &code, &t.Reason, &t.Executor, &t.Handle, &t.LogPath, &t.Hostname, &t.Rendered); err != nil {
			return nil, err
		}
		t.State, t.StartDate, t.EndDate = dags.TaskState(state), parseTS(start), parseTSPtr(end)
		if code.Valid {
			c := int(code.Int64)
			t.ExitCode = &c
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// UnfinishedTries returns tries with no end: after a restart, the ones the
// executor must adopt or fail.
func (s *Store) UnfinishedTries(ctx context.Context) ([]Try, error) {
	rows, err := s.query(ctx, `SELECT dag_id, run_id, task_id, try_number, state, start_date, executor, handle, log_path
		FROM task_tries WHERE end_date IS NULL ORDER BY start_date`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Try
	for rows.Next() {
		var t Try
		var state, start string
		if err := rows.Scan(&t.DagID, &t.RunID, &t.TaskID, &t.TryNumber, &state, &start, &t.Executor, &t.Handle, &t.LogPath); err != nil {
			return nil, err
		}
		t.State, t.StartDate = dags.TaskState(state), parseTS(start)
		out = append(out, t)
	}
	return out, rows.Err()
}
