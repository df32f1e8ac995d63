package web

import (
	"net/http"
	"strconv"

	"updraft/store"
	"updraft/web/ops"
)

// tiKeyParam is the task instance a request names: its path, and the map
// index from the path ({map_index}) or the query (map_index), -1 when
// neither gives one.
func tiKeyParam(r *http.Request) store.TIKey {
	k := store.Unmapped(param(r, "dag_id"), param(r, "run_id"), param(r, "task_id"))
	v := param(r, "map_index")
	if v == "" {
		v = r.URL.Query().Get("map_index")
	}
	if n, err := strconv.Atoi(v); err == nil && n >= -1 {
		k.MapIndex = n
	}
	return k
}

// xcomFilterOf reads the path (with Airflow's ~ for "any") and the
// map_index and xcom_key query parameters.
func xcomFilterOf(r *http.Request) (store.XComFilter, error) {
	f := store.XComFilter{}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"dag_id", &f.DagID}, {"run_id", &f.RunID}} {
		if v := param(r, p.name); v != "~" {
			*p.dst = v
		}
	}
	if v := param(r, "task_id"); v != "~" {
		f.TaskIDs = []string{v}
	}
	if v := r.URL.Query().Get("map_index"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return f, badRequest("map_index must be a whole number")
		}
		f.MapIndex = &n
	}
	f.Key = r.URL.Query().Get("xcom_key")
	return f, nil
}

func apiXCom(x ops.XComEntry, withValue bool) map[string]any {
	out := map[string]any{"key": x.Key, "timestamp": apiTime(x.CreatedAt), "execution_date": apiTime(x.LogicalDate),
		"task_id": x.TaskID, "dag_id": x.DagID, "map_index": x.MapIndex}
	if withValue {
		out["value"] = x.Text
	}
	return out
}

// apiListXComs is GET .../taskInstances/{task_id}/xcomEntries (values
// left out, as in Airflow: fetch one entry for its value).
func (s *Server) apiListXComs(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f, err := xcomFilterOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	xs, err := s.ops.XComs(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	items := []map[string]any{}
	for _, x := range slice(xs, p) {
		items = append(items, apiXCom(x, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"xcom_entries": items, "total_entries": len(xs)})
}

// apiGetXCom is GET .../xcomEntries/{xcom_key}: one entry with its value
// (a string as it is, anything else as JSON).
func (s *Server) apiGetXCom(w http.ResponseWriter, r *http.Request) {
	f, err := xcomFilterOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f.Key = param(r, "xcom_key")
	xs, err := s.ops.XComs(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(xs) == 0 {
		s.fail(w, r, store.ErrNotFound)
		return
	}
	writeJSON(w, http.StatusOK, apiXCom(xs[0], true))
}
