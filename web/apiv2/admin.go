package apiv2

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"updraft/store"
	"updraft/web/ops"
)

// updateMask reads update_mask: which fields of a PATCH body apply (all
// of them without a mask); a field the operation does not know is 400.
func updateMask(q *query, fields ...string) (func(string) bool, error) {
	mask := q.list("update_mask")
	for _, m := range mask {
		if !slices.Contains(fields, m) {
			return nil, ops.Invalid("update_mask: %q is not one of %s", m, strings.Join(fields, ", "))
		}
	}
	return func(f string) bool { return len(mask) == 0 || slices.Contains(mask, f) }, nil
}

func cmpStr(a, b string) int { return strings.Compare(a, b) }

// --- variables ---

// variableBody is Airflow 3's VariableBody: the value is any JSON (a
// string is stored as it is, anything else as its JSON text).
type variableBody struct {
	Key         *string         `json:"key"`
	Value       json.RawMessage `json:"value"`
	Description *string         `json:"description"`
	TeamName    *string         `json:"team_name"`
}

func (b variableBody) check() error {
	if b.Key == nil {
		return required("key")
	}
	if b.Value == nil {
		return required("value")
	}
	return nil
}

func (b variableBody) value() string {
	var s string
	if json.Unmarshal(b.Value, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, b.Value) == nil {
		return buf.String()
	}
	return string(b.Value)
}

func variableResponse(v store.Variable) map[string]any {
	return map[string]any{"key": v.Key, "value": ops.VariableValue(v), "description": nullable(v.Description),
		"is_encrypted": v.Secret, "team_name": nil}
}

func (a *api) variable(r *http.Request, key string) (store.Variable, error) {
	v, err := a.ops.Store.Variable(r.Context(), key)
	if err != nil {
		return v, fmt.Errorf("the Variable with key: `%s` was not found: %w", key, store.ErrNotFound)
	}
	return v, nil
}

func (a *api) listVariables(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p, pattern, order := q.page(), q.str("variable_key_pattern"), q.orderBy("id")
	if err := q.err(); err != nil {
		return err
	}
	vars, err := a.ops.Store.Variables(r.Context())
	if err != nil {
		return err
	}
	vars = slices.DeleteFunc(vars, func(v store.Variable) bool { return pattern != "" && !ops.Like(pattern, v.Key) })
	byKey := func(a, b store.Variable) int { return cmpStr(a.Key, b.Key) }
	if err := ops.SortBy(vars, order, map[string]func(a, b store.Variable) int{
		"id": byKey, "key": byKey, "description": func(a, b store.Variable) int { return cmpStr(a.Description, b.Description) },
		"is_encrypted": func(a, b store.Variable) int { return ops.CompareBool(a.Secret, b.Secret) },
		"_val":         func(a, b store.Variable) int { return cmpStr(ops.VariableValue(a), ops.VariableValue(b)) },
	}); err != nil {
		return err
	}
	out := []map[string]any{}
	for _, v := range ops.Slice(vars, p) {
		out = append(out, variableResponse(v))
	}
	return collection(w, "variables", out, len(vars))
}

func (a *api) getVariable(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := a.variable(r, param(r, "variable_key"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, variableResponse(v))
	return nil
}

func (a *api) postVariable(w http.ResponseWriter, r *http.Request, c call) error {
	var b variableBody
	if err := readBody(r, &b); err != nil {
		return err
	}
	if err := b.check(); err != nil {
		return err
	}
	if _, err := a.ops.Store.Variable(r.Context(), *b.Key); err == nil {
		return fmt.Errorf("the Variable with key: `%s` already exists: %w", *b.Key, store.ErrConflict)
	}
	v, err := a.saveVariable(r, c, store.Variable{Key: *b.Key}, b, nil, "variable_create")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, variableResponse(v))
	return nil
}

// saveVariable applies a body to a variable (the fields want selects,
// all when nil) and saves it.
func (a *api) saveVariable(r *http.Request, c call, v store.Variable, b variableBody, want func(string) bool, action string) (store.Variable, error) {
	if want == nil || want("value") {
		v.Value = b.value()
	}
	if (want == nil || want("description")) && b.Description != nil {
		v.Description = *b.Description
	}
	v.UpdatedAt = time.Time{}
	if err := a.ops.SetVariable(r.Context(), v, c.actor, action); err != nil {
		return v, err
	}
	return a.variable(r, v.Key)
}

func (a *api) patchVariable(w http.ResponseWriter, r *http.Request, c call) error {
	key := param(r, "variable_key")
	want, err := updateMask(queryOf(r), "value", "description")
	if err != nil {
		return err
	}
	var b variableBody
	if err := readBody(r, &b); err != nil {
		return err
	}
	if err := b.check(); err != nil {
		return err
	}
	if *b.Key != key {
		return ops.Invalid("invalid body, key from request body doesn't match uri parameter")
	}
	v, err := a.variable(r, key)
	if err != nil {
		return err
	}
	if v, err = a.saveVariable(r, c, v, b, want, "variable_edit"); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, variableResponse(v))
	return nil
}

func (a *api) deleteVariable(w http.ResponseWriter, r *http.Request, c call) error {
	key := param(r, "variable_key")
	if _, err := a.variable(r, key); err != nil {
		return err
	}
	if err := a.ops.DeleteVariable(r.Context(), key, c.actor); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- bulk (PATCH on a collection) ---

// bulkAction is one of a BulkBody's actions, its entities still raw.
type bulkAction struct {
	Action              string            `json:"action"`
	Entities            []json.RawMessage `json:"entities"`
	ActionOnExistence   string            `json:"action_on_existence"`
	ActionOnNonExistent string            `json:"action_on_non_existence"`
	UpdateMask          []string          `json:"update_mask"`
}

// bulkResult is a BulkActionResponse.
type bulkResult struct {
	Success []string         `json:"success"`
	Errors  []map[string]any `json:"errors"`
}

// bulkItem is what a collection does for one entity of an action.
type bulkItem struct {
	name   string
	exists bool
	save   func(overwrite bool) error
	remove func() error
}

// bulk runs a BulkBody: each action's entities in order, an entity's
// failure recorded beside the others' successes (Airflow's rule).
func (a *api) bulk(w http.ResponseWriter, r *http.Request, item func(act bulkAction, raw json.RawMessage) (bulkItem, error)) error {
	var body struct {
		Actions []bulkAction `json:"actions"`
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	if body.Actions == nil {
		return required("actions")
	}
	out := map[string]*bulkResult{}
	for i, act := range body.Actions {
		switch act.Action {
		case "create", "update", "delete":
		default:
			return invalid{{Type: "union_tag_invalid", Loc: []any{"body", "actions", i}, Msg: "Input tag should be 'create', 'update' or 'delete'", Input: act.Action}}
		}
		if act.Entities == nil {
			return invalid{{Type: "missing", Loc: []any{"body", "actions", i, act.Action, "entities"}, Msg: "Field required", Input: noInput}}
		}
		res := out[act.Action]
		if res == nil {
			res = &bulkResult{Success: []string{}, Errors: []map[string]any{}}
			out[act.Action] = res
		}
		for _, raw := range act.Entities {
			it, err := item(act, raw)
			if err == nil {
				err = a.bulkOne(act, it)
			}
			if err != nil {
				status := http.StatusBadRequest
				switch {
				case errors.Is(err, store.ErrConflict):
					status = http.StatusConflict
				case errors.Is(err, store.ErrNotFound):
					status = http.StatusNotFound
				}
				res.Errors = append(res.Errors, map[string]any{"error": clean(err), "status_code": status})
				continue
			}
			if it.name != "" {
				res.Success = append(res.Success, it.name)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) bulkOne(act bulkAction, it bulkItem) error {
	switch act.Action {
	case "create":
		if it.exists {
			switch act.ActionOnExistence {
			case "skip":
				it.name = ""
				return nil
			case "overwrite":
				return it.save(true)
			}
			return fmt.Errorf("%s already exists: %w", it.name, store.ErrConflict)
		}
		return it.save(false)
	case "update":
		if !it.exists {
			if act.ActionOnNonExistent == "skip" {
				return nil
			}
			return fmt.Errorf("%s was not found: %w", it.name, store.ErrNotFound)
		}
		return it.save(true)
	default:
		if !it.exists {
			if act.ActionOnNonExistent == "skip" {
				return nil
			}
			return fmt.Errorf("%s was not found: %w", it.name, store.ErrNotFound)
		}
		return it.remove()
	}
}

// entityName reads a delete action's entity: a name, or a body with it.
func entityName(raw json.RawMessage, field string) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil {
		if s, ok := m[field].(string); ok {
			return s
		}
	}
	return ""
}

func strictJSON(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return ops.Invalid("entity %s: %v", raw, err)
	}
	return nil
}

func (a *api) bulkVariables(w http.ResponseWriter, r *http.Request, c call) error {
	return a.bulk(w, r, func(act bulkAction, raw json.RawMessage) (bulkItem, error) {
		var b variableBody
		if act.Action == "delete" {
			key := entityName(raw, "key")
			b.Key = &key
		} else if err := strictJSON(raw, &b); err != nil {
			return bulkItem{}, err
		} else if err := b.check(); err != nil {
			return bulkItem{}, ops.Invalid("entity %s: key and value are required", raw)
		}
		old, err := a.ops.Store.Variable(r.Context(), *b.Key)
		exists := err == nil
		var want func(string) bool
		if act.Action == "update" && len(act.UpdateMask) > 0 {
			want = func(f string) bool { return slices.Contains(act.UpdateMask, f) }
		}
		return bulkItem{name: *b.Key, exists: exists,
			save: func(overwrite bool) error {
				v := store.Variable{Key: *b.Key}
				if exists {
					v = old
				}
				action := "variable_create"
				if overwrite {
					action = "variable_edit"
				}
				_, err := a.saveVariable(r, c, v, b, want, action)
				return err
			},
			remove: func() error { return a.ops.DeleteVariable(r.Context(), *b.Key, c.actor) }}, nil
	})
}

// --- pools ---

func (a *api) poolResponse(p ops.PoolView) map[string]any {
	return map[string]any{"name": p.Name, "slots": p.Slots, "description": nullable(p.Description), "include_deferred": false,
		"occupied_slots": p.Running + p.Queued, "running_slots": p.Running, "queued_slots": p.Queued, "scheduled_slots": 0,
		"open_slots": p.Open, "deferred_slots": 0, "team_name": nil}
}

func (a *api) pool(r *http.Request, name string) (ops.PoolView, error) {
	pools, _, err := a.ops.Pools(r.Context())
	if err != nil {
		return ops.PoolView{}, err
	}
	for _, p := range pools {
		if p.Name == name {
			return p, nil
		}
	}
	return ops.PoolView{}, fmt.Errorf("the Pool with name: `%s` was not found: %w", name, store.ErrNotFound)
}

func (a *api) listPools(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p, pattern, order := q.page(), q.str("pool_name_pattern"), q.orderBy("id")
	if err := q.err(); err != nil {
		return err
	}
	pools, _, err := a.ops.Pools(r.Context())
	if err != nil {
		return err
	}
	pools = slices.DeleteFunc(pools, func(v ops.PoolView) bool { return pattern != "" && !ops.Like(pattern, v.Name) })
	byName := func(a, b ops.PoolView) int { return cmpStr(a.Name, b.Name) }
	if err := ops.SortBy(pools, order, map[string]func(a, b ops.PoolView) int{
		"id": byName, "name": byName, "pool": byName, "slots": func(a, b ops.PoolView) int { return a.Slots - b.Slots },
		"description": func(a, b ops.PoolView) int { return cmpStr(a.Description, b.Description) },
	}); err != nil {
		return err
	}
	out := []map[string]any{}
	for _, v := range ops.Slice(pools, p) {
		out = append(out, a.poolResponse(v))
	}
	return collection(w, "pools", out, len(pools))
}

func (a *api) getPool(w http.ResponseWriter, r *http.Request, c call) error {
	p, err := a.pool(r, param(r, "pool_name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.poolResponse(p))
	return nil
}

// poolBody is PoolBody, and PoolPatchBody with the name under "pool".
type poolBody struct {
	Name            *string `json:"name"`
	Pool            *string `json:"pool"`
	Slots           *int    `json:"slots"`
	Description     *string `json:"description"`
	IncludeDeferred *bool   `json:"include_deferred"`
	TeamName        *string `json:"team_name"`
}

func (b poolBody) check() error {
	if b.Name == nil {
		return required("name")
	}
	if b.Slots == nil {
		return required("slots")
	}
	return b.deferred()
}

// deferred refuses include_deferred: updraft has no deferred tasks.
func (b poolBody) deferred() error {
	if b.IncludeDeferred != nil && *b.IncludeDeferred {
		return ops.Invalid("include_deferred: updraft has no deferrable operators, so a pool has no deferred slots to count")
	}
	return nil
}

func (a *api) savePool(r *http.Request, c call, p store.Pool, b poolBody, want func(string) bool, action string) (ops.PoolView, error) {
	if (want == nil || want("slots")) && b.Slots != nil {
		p.Slots = *b.Slots
	}
	if (want == nil || want("description")) && b.Description != nil {
		p.Description = *b.Description
	}
	if err := a.ops.SetPool(r.Context(), p, c.actor, action); err != nil {
		return ops.PoolView{}, err
	}
	return a.pool(r, p.Name)
}

func (a *api) postPool(w http.ResponseWriter, r *http.Request, c call) error {
	var b poolBody
	if err := readBody(r, &b); err != nil {
		return err
	}
	if b.Pool != nil {
		return invalid{{Type: "extra_forbidden", Loc: []any{"body", "pool"}, Msg: "Extra inputs are not permitted", Input: *b.Pool}}
	}
	if err := b.check(); err != nil {
		return err
	}
	if _, err := a.pool(r, *b.Name); err == nil {
		return fmt.Errorf("the Pool with name: `%s` already exists: %w", *b.Name, store.ErrConflict)
	}
	p, err := a.savePool(r, c, store.Pool{Name: *b.Name}, b, nil, "pool_create")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.poolResponse(p))
	return nil
}

func (a *api) patchPool(w http.ResponseWriter, r *http.Request, c call) error {
	name := param(r, "pool_name")
	want, err := updateMask(queryOf(r), "pool", "name", "slots", "description", "include_deferred")
	if err != nil {
		return err
	}
	var b poolBody
	if err := readBody(r, &b); err != nil {
		return err
	}
	if b.Name != nil {
		return invalid{{Type: "extra_forbidden", Loc: []any{"body", "name"}, Msg: "Extra inputs are not permitted", Input: *b.Name}}
	}
	if err := b.deferred(); err != nil {
		return err
	}
	if b.Pool != nil && *b.Pool != name && want("pool") {
		return ops.Invalid("pool %s: renaming a pool is not supported; create the new one and move the tasks to it", name)
	}
	p, err := a.pool(r, name)
	if err != nil {
		return err
	}
	v, err := a.savePool(r, c, p.Pool, b, want, "pool_edit")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.poolResponse(v))
	return nil
}

func (a *api) deletePool(w http.ResponseWriter, r *http.Request, c call) error {
	name := param(r, "pool_name")
	if err := ops.CheckPoolDelete(name); err != nil {
		return err
	}
	if _, err := a.pool(r, name); err != nil {
		return err
	}
	if err := a.ops.DeletePool(r.Context(), name, c.actor); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) bulkPools(w http.ResponseWriter, r *http.Request, c call) error {
	return a.bulk(w, r, func(act bulkAction, raw json.RawMessage) (bulkItem, error) {
		var b poolBody
		if act.Action == "delete" {
			name := entityName(raw, "name")
			b.Name = &name
		} else if err := strictJSON(raw, &b); err != nil {
			return bulkItem{}, err
		} else if err := b.check(); err != nil {
			return bulkItem{}, ops.Invalid("entity %s: %v", raw, clean(err))
		}
		old, err := a.pool(r, *b.Name)
		exists := err == nil
		var want func(string) bool
		if act.Action == "update" && len(act.UpdateMask) > 0 {
			want = func(f string) bool { return slices.Contains(act.UpdateMask, f) }
		}
		return bulkItem{name: *b.Name, exists: exists,
			save: func(overwrite bool) error {
				p := store.Pool{Name: *b.Name}
				if exists {
					p = old.Pool
				}
				action := "pool_create"
				if overwrite {
					action = "pool_edit"
				}
				_, err := a.savePool(r, c, p, b, want, action)
				return err
			},
			remove: func() error {
				if err := ops.CheckPoolDelete(*b.Name); err != nil {
					return err
				}
				return a.ops.DeletePool(r.Context(), *b.Name, c.actor)
			}}, nil
	})
}

// --- connections (read only: they live in the environment) ---

func connectionResponse(c ops.ConnectionInfo) map[string]any {
	m := map[string]any{"connection_id": c.ID, "conn_type": c.Type, "description": nullable(c.Source), "host": nullable(c.Host),
		"login": nullable(c.Login), "schema": nullable(c.Schema), "port": nil, "password": nil, "extra": nil, "team_name": nil}
	if c.Port != 0 {
		m["port"] = c.Port
	}
	return m
}

func (a *api) connections() ([]ops.ConnectionInfo, error) {
	if a.opt.Connections == nil {
		return nil, nil
	}
	return a.opt.Connections.List()
}

func (a *api) listConnections(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p, pattern, order := q.page(), q.str("connection_id_pattern"), q.orderBy("id")
	if err := q.err(); err != nil {
		return err
	}
	list, err := a.connections()
	if err != nil {
		return err
	}
	list = slices.DeleteFunc(list, func(v ops.ConnectionInfo) bool { return pattern != "" && !ops.Like(pattern, v.ID) })
	byID := func(a, b ops.ConnectionInfo) int { return cmpStr(a.ID, b.ID) }
	if err := ops.SortBy(list, order, map[string]func(a, b ops.ConnectionInfo) int{
		"id": byID, "connection_id": byID, "conn_type": func(a, b ops.ConnectionInfo) int { return cmpStr(a.Type, b.Type) },
		"host": func(a, b ops.ConnectionInfo) int { return cmpStr(a.Host, b.Host) },
	}); err != nil {
		return err
	}
	out := []map[string]any{}
	for _, v := range ops.Slice(list, p) {
		out = append(out, connectionResponse(v))
	}
	return collection(w, "connections", out, len(list))
}

func (a *api) connection(id string) (ops.ConnectionInfo, error) {
	list, err := a.connections()
	if err != nil {
		return ops.ConnectionInfo{}, err
	}
	for _, c := range list {
		if c.ID == id {
			return c, nil
		}
	}
	return ops.ConnectionInfo{}, fmt.Errorf("the Connection with connection_id: `%s` was not found: %w", id, store.ErrNotFound)
}

func (a *api) getConnection(w http.ResponseWriter, r *http.Request, c call) error {
	conn, err := a.connection(param(r, "connection_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, connectionResponse(conn))
	return nil
}

// testConnection tests the configured connection the body names (the
// other fields of the body cannot replace what is configured: updraft's
// connections are read from the environment). The outcome is in the
// body, as Airflow answers.
func (a *api) testConnection(w http.ResponseWriter, r *http.Request, c call) error {
	var body map[string]any
	if err := readBody(r, &body); err != nil {
		return err
	}
	id, _ := body["connection_id"].(string)
	if id == "" {
		return required("connection_id")
	}
	if _, ok := body["conn_type"]; !ok {
		return required("conn_type")
	}
	a.ops.Audit(r.Context(), c.actor, "connection_test", "", "", "", "conn_id="+id)
	if _, err := a.connection(id); err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"status": false, "message": clean(err)})
		return nil
	}
	msg, err := a.opt.Connections.Test(r.Context(), id)
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"status": false, "message": clean(err)})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": true, "message": msg})
	return nil
}

// --- import errors and the event log ---

func (a *api) importErrorResponse(e store.ImportError) map[string]any {
	return map[string]any{"import_error_id": e.ID, "timestamp": apiTime(e.Timestamp), "filename": e.File,
		"bundle_name": a.bundle(), "stack_trace": e.StackTrace}
}

func (a *api) listImportErrors(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p, pattern, order := q.page(), q.str("filename_pattern"), q.orderBy("id")
	if err := q.err(); err != nil {
		return err
	}
	list, err := a.ops.Store.ImportErrors(r.Context())
	if err != nil {
		return err
	}
	list = slices.DeleteFunc(list, func(e store.ImportError) bool { return pattern != "" && !ops.Like(pattern, e.File) })
	byID := func(a, b store.ImportError) int { return int(a.ID - b.ID) }
	if err := ops.SortBy(list, order, map[string]func(a, b store.ImportError) int{
		"id": byID, "import_error_id": byID, "filename": func(a, b store.ImportError) int { return cmpStr(a.File, b.File) },
		"timestamp": func(a, b store.ImportError) int { return a.Timestamp.Compare(b.Timestamp) },
	}); err != nil {
		return err
	}
	out := []map[string]any{}
	for _, e := range ops.Slice(list, p) {
		out = append(out, a.importErrorResponse(e))
	}
	return collection(w, "import_errors", out, len(list))
}

func (a *api) getImportError(w http.ResponseWriter, r *http.Request, c call) error {
	id, err := strconv.ParseInt(param(r, "import_error_id"), 10, 64)
	if err != nil {
		return invalid{{Type: "int_parsing", Loc: []any{"path", "import_error_id"}, Msg: "Input should be a valid integer, unable to parse string as an integer", Input: param(r, "import_error_id")}}
	}
	list, err := a.ops.Store.ImportErrors(r.Context())
	if err != nil {
		return err
	}
	for _, e := range list {
		if e.ID == id {
			writeJSON(w, http.StatusOK, a.importErrorResponse(e))
			return nil
		}
	}
	return fmt.Errorf("the ImportError with import_error_id: `%d` was not found: %w", id, store.ErrNotFound)
}

func (a *api) eventResponse(e store.AuditEntry) map[string]any {
	m := map[string]any{"event_log_id": e.ID, "when": apiTime(e.At), "event": e.Action, "owner": nullable(e.Actor),
		"extra": nullable(e.Detail), "dag_id": nullable(e.DagID), "dag_display_name": nil, "task_id": nullable(e.TaskID),
		"task_display_name": nullable(e.TaskID), "run_id": nullable(e.RunID), "map_index": nil, "try_number": nil, "logical_date": nil}
	if e.DagID != "" {
		m["dag_display_name"] = a.dagName(e.DagID)
	}
	return m
}

func (a *api) listEventLogs(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p := q.page()
	f := store.AuditFilter{DagID: q.str("dag_id"), TaskID: q.str("task_id"), RunID: q.str("run_id"), Actor: q.str("owner"),
		Action: q.str("event"), Actions: q.list("included_events"), ExcludedActions: q.list("excluded_events"),
		DagIDPattern: q.str("dag_id_pattern"), TaskIDPattern: q.str("task_id_pattern"), RunIDPattern: q.str("run_id_pattern"),
		ActorPattern: q.str("owner_pattern"), ActionPattern: q.str("event_pattern"),
		After: q.time("after"), Before: q.time("before"), Limit: p.Limit, Offset: p.Offset}
	if order := q.orderBy(); len(order) > 0 {
		if len(order) > 1 {
			return ops.Invalid("order_by: the event log is ordered by one field")
		}
		f.OrderBy = order[0]
	}
	refused := refuse(q, "map_index", "try_number")
	if err := q.err(); err != nil {
		return err
	}
	if refused != nil {
		return refused
	}
	list, total, err := a.ops.Store.FindAudit(r.Context(), f)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, e := range list {
		out = append(out, a.eventResponse(e))
	}
	if p.Limit == 0 {
		out = out[:0]
	}
	return collection(w, "event_logs", out, total)
}

func (a *api) getEventLog(w http.ResponseWriter, r *http.Request, c call) error {
	id, err := strconv.ParseInt(param(r, "event_log_id"), 10, 64)
	if err != nil {
		return invalid{{Type: "int_parsing", Loc: []any{"path", "event_log_id"}, Msg: "Input should be a valid integer, unable to parse string as an integer", Input: param(r, "event_log_id")}}
	}
	list, _, err := a.ops.Store.FindAudit(r.Context(), store.AuditFilter{ID: id, Limit: 1})
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return fmt.Errorf("the Event Log with id: `%d` not found: %w", id, store.ErrNotFound)
	}
	writeJSON(w, http.StatusOK, a.eventResponse(list[0]))
	return nil
}

// --- the server: health, version, configuration, jobs ---

func (a *api) health(w http.ResponseWriter, r *http.Request, c call) error {
	body := map[string]any{"metadatabase": map[string]any{"status": "healthy"},
		"scheduler": map[string]any{"status": nil, "latest_scheduler_heartbeat": nil},
		"triggerer": map[string]any{"status": nil, "latest_triggerer_heartbeat": nil}}
	if a.opt.Health != nil {
		for k, v := range a.opt.Health(r) {
			body[k] = v
		}
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (a *api) version(w http.ResponseWriter, r *http.Request, c call) error {
	writeJSON(w, http.StatusOK, map[string]any{"version": a.opt.Version, "git_version": nil})
	return nil
}

// configOff is Airflow's answer when [api] expose_config is off.
var configOff = fmt.Errorf("the server does not expose its configuration; start it with --api-expose-config to allow Admins to read it (secrets stay masked): %w", errForbidden)

func (a *api) config(section string) ([]ConfigSection, error) {
	if a.opt.Config == nil {
		return nil, configOff
	}
	all := a.opt.Config()
	if section == "" {
		return all, nil
	}
	for _, s := range all {
		if s.Name == section {
			return []ConfigSection{s}, nil
		}
	}
	return nil, fmt.Errorf("section %s not found: %w", section, store.ErrNotFound)
}

// writeConfig answers in JSON or, when asked, as an ini file.
func writeConfig(w http.ResponseWriter, r *http.Request, sections []ConfigSection) error {
	switch accepts(r, "application/json", "text/plain") {
	case "text/plain":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var b strings.Builder
		for _, s := range sections {
			fmt.Fprintf(&b, "[%s]\n", s.Name)
			for _, o := range s.Options {
				fmt.Fprintf(&b, "%s = %s\n", o[0], o[1])
			}
			b.WriteString("\n")
		}
		_, _ = w.Write([]byte(b.String()))
		return nil
	case "":
		detail(w, http.StatusNotAcceptable, "Only application/json or text/plain is supported")
		return nil
	}
	out := []map[string]any{}
	for _, s := range sections {
		opts := []map[string]any{}
		for _, o := range s.Options {
			opts = append(opts, map[string]any{"key": o[0], "value": o[1]})
		}
		out = append(out, map[string]any{"name": s.Name, "options": opts})
	}
	writeJSON(w, http.StatusOK, map[string]any{"sections": out})
	return nil
}

func (a *api) getConfig(w http.ResponseWriter, r *http.Request, c call) error {
	sections, err := a.config(queryOf(r).str("section"))
	if err != nil {
		return err
	}
	return writeConfig(w, r, sections)
}

func (a *api) getConfigValue(w http.ResponseWriter, r *http.Request, c call) error {
	sections, err := a.config(param(r, "section"))
	if err != nil {
		return err
	}
	option := param(r, "option")
	for _, o := range sections[0].Options {
		if o[0] == option {
			return writeConfig(w, r, []ConfigSection{{Name: sections[0].Name, Options: [][2]string{o}}})
		}
	}
	return fmt.Errorf("option [%s/%s] not found: %w", sections[0].Name, option, store.ErrNotFound)
}

func (a *api) listJobs(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p, alive, startGTE, startLTE := q.page(), q.boolean("is_alive"), q.time("start_date_gte"), q.time("start_date_lte")
	jobType, hostname, state := q.str("job_type"), q.str("hostname"), q.str("job_state")
	refused := refuse(q, "start_date_gt", "start_date_lt", "end_date_gte", "end_date_gt", "end_date_lte", "end_date_lt", "executor_class")
	order := q.orderBy("id")
	if err := q.err(); err != nil {
		return err
	}
	if refused != nil {
		return refused
	}
	var jobs []Job
	if a.opt.Jobs != nil {
		var err error
		if jobs, err = a.opt.Jobs(r); err != nil {
			return err
		}
	}
	jobs = slices.DeleteFunc(jobs, func(j Job) bool {
		return (alive != nil && *alive != (j.State == "running")) || (jobType != "" && jobType != "SchedulerJob") ||
			(hostname != "" && hostname != j.Hostname) || (state != "" && state != j.State) ||
			(startGTE != nil && j.Start.Before(*startGTE)) || (startLTE != nil && j.Start.After(*startLTE))
	})
	byID := func(a, b Job) int { return int(a.ID - b.ID) }
	if err := ops.SortBy(jobs, order, map[string]func(a, b Job) int{
		"id": byID, "start_date": func(a, b Job) int { return a.Start.Compare(b.Start) },
		"latest_heartbeat": func(a, b Job) int { return a.LastHeartbeat.Compare(b.LastHeartbeat) },
		"hostname":         func(a, b Job) int { return cmpStr(a.Hostname, b.Hostname) },
	}); err != nil {
		return err
	}
	out := []map[string]any{}
	for _, j := range ops.Slice(jobs, p) {
		out = append(out, map[string]any{"id": j.ID, "dag_id": nil, "dag_display_name": nil, "state": j.State, "job_type": "SchedulerJob",
			"start_date": apiTime(j.Start), "end_date": nil, "latest_heartbeat": apiTime(j.LastHeartbeat),
			"executor_class": nil, "hostname": j.Hostname, "unixname": "updraft"})
	}
	return collection(w, "jobs", out, len(jobs))
}

// empty answers a collection updraft has nothing in (plugins, providers).
func empty(name string) handler {
	return func(w http.ResponseWriter, r *http.Request, c call) error {
		q := queryOf(r)
		q.page()
		if err := q.err(); err != nil {
			return err
		}
		return collection(w, name, []any{}, 0)
	}
}

// login sends a browser to the web UI's sign-in page (Airflow 3's
// /auth/login hands over to its auth manager's).
func (a *api) login(w http.ResponseWriter, r *http.Request, c call) error {
	next := queryOf(r).str("next")
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		next = "/"
	}
	w.Header().Set("Location", "/login?next="+url.QueryEscape(next))
	detail(w, http.StatusTemporaryRedirect, "sign in at /login")
	return nil
}
