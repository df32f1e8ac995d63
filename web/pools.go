package web

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"updraft/store"
	"updraft/web/ops"
)

// Pools limit how many task instances run at once across DAGs (Airflow's
// pools): Op and Admin manage them on the Pools page, through /api/v1/pools
// and with `updraft pools`. A task naming a pool that does not exist waits
// until it is created, as in Airflow; the Pools page lists such pools.

const defaultPool = ops.DefaultPool

// ValidatePool checks a pool before it is saved.
func ValidatePool(p store.Pool) error { return ops.ValidatePool(p) }

// CheckPoolDelete refuses to delete the default pool.
func CheckPoolDelete(name string) error { return ops.CheckPoolDelete(name) }

func (s *Server) setPool(r *http.Request, p store.Pool, action string) error {
	return s.ops.SetPool(r.Context(), p, actor(r), action)
}

func (s *Server) deletePool(r *http.Request, name string) error {
	return s.ops.DeletePool(r.Context(), name, actor(r))
}

type poolView = ops.PoolView

func (s *Server) poolViews(r *http.Request) ([]poolView, map[string]int, error) {
	return s.ops.Pools(r.Context())
}

// --- REST API ---

type apiPool struct {
	Name          string  `json:"name"`
	Slots         int     `json:"slots"`
	OccupiedSlots int     `json:"occupied_slots"`
	UsedSlots     int     `json:"used_slots"`
	QueuedSlots   int     `json:"queued_slots"`
	OpenSlots     int     `json:"open_slots"`
	Description   *string `json:"description"`
}

func toAPIPool(v poolView) apiPool {
	return apiPool{Name: v.Name, Slots: v.Slots, OccupiedSlots: v.Running + v.Queued, UsedSlots: v.Running, QueuedSlots: v.Queued,
		OpenSlots: v.Open, Description: nullable(v.Description)}
}

func (s *Server) apiListPools(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	views, _, err := s.poolViews(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ob := r.URL.Query().Get("order_by"); ob != "" {
		if err := sortBy(views, ob, map[string]func(a, b poolView) int{
			"name":  func(a, b poolView) int { return strings.Compare(a.Name, b.Name) },
			"slots": func(a, b poolView) int { return cmpInt(a.Slots, b.Slots) },
		}); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	out := []apiPool{}
	for _, v := range slice(views, p) {
		out = append(out, toAPIPool(v))
	}
	writeJSON(w, http.StatusOK, map[string]any{"pools": out, "total_entries": len(views)})
}

func (s *Server) apiGetPool(w http.ResponseWriter, r *http.Request) {
	s.writePool(w, r, param(r, "pool_name"), http.StatusOK)
}

func (s *Server) writePool(w http.ResponseWriter, r *http.Request, name string, status int) {
	views, _, err := s.poolViews(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, v := range views {
		if v.Name == name {
			writeJSON(w, status, toAPIPool(v))
			return
		}
	}
	s.fail(w, r, fmt.Errorf("pool %q: %w", name, store.ErrNotFound))
}

type poolBody struct {
	Name        *string `json:"name"`
	Slots       *int    `json:"slots"`
	Description *string `json:"description"`
}

func (s *Server) apiCreatePool(w http.ResponseWriter, r *http.Request) {
	var b poolBody
	if err := readJSON(r, &b); err != nil {
		s.fail(w, r, err)
		return
	}
	if b.Name == nil || b.Slots == nil {
		s.fail(w, r, badRequest("name and slots are required"))
		return
	}
	if _, err := s.pool(r, *b.Name); err == nil {
		s.fail(w, r, fmt.Errorf("pool %q already exists: %w", *b.Name, store.ErrConflict))
		return
	}
	p := store.Pool{Name: *b.Name, Slots: *b.Slots, Description: deref(b.Description)}
	if err := s.setPool(r, p, "pool_create"); err != nil {
		s.fail(w, r, err)
		return
	}
	s.writePool(w, r, p.Name, http.StatusOK)
}

func (s *Server) pool(r *http.Request, name string) (store.Pool, error) {
	pools, err := s.st.Pools(r.Context())
	if err != nil {
		return store.Pool{}, err
	}
	for _, p := range pools {
		if p.Name == name {
			return p, nil
		}
	}
	return store.Pool{}, fmt.Errorf("pool %q: %w", name, store.ErrNotFound)
}

// apiPatchPool changes slots and description (the fields in update_mask,
// or those in the body). Pools are not renamed.
func (s *Server) apiPatchPool(w http.ResponseWriter, r *http.Request) {
	name := param(r, "pool_name")
	p, err := s.pool(r, name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var b poolBody
	if err := readJSON(r, &b); err != nil {
		s.fail(w, r, err)
		return
	}
	if b.Name != nil && *b.Name != name {
		s.fail(w, r, badRequest("pools are not renamed: the name in the body (%q) differs from the one in the path (%q)", *b.Name, name))
		return
	}
	mask := multi(r, "update_mask")
	for _, f := range mask {
		if f != "slots" && f != "description" && f != "name" {
			s.fail(w, r, badRequest("update_mask: unknown field %q", f))
			return
		}
	}
	want := func(field string) bool { return len(mask) == 0 || contains(mask, field) }
	if want("slots") && b.Slots != nil {
		p.Slots = *b.Slots
	}
	if want("description") && b.Description != nil {
		p.Description = *b.Description
	}
	if err := s.setPool(r, p, "pool_edit"); err != nil {
		s.fail(w, r, err)
		return
	}
	s.writePool(w, r, name, http.StatusOK)
}

func (s *Server) apiDeletePool(w http.ResponseWriter, r *http.Request) {
	if err := s.deletePool(r, param(r, "pool_name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- the Pools page ---

type missingPool struct {
	Name  string
	Tasks int
}

func (s *Server) pagePools(w http.ResponseWriter, r *http.Request) {
	views, missing, err := s.poolViews(r)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	var gone []missingPool
	for name, n := range missing {
		gone = append(gone, missingPool{name, n})
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].Name < gone[j].Name })
	s.render(w, r, http.StatusOK, "pools.html", "Pools", "pools", map[string]any{"Pools": views, "Missing": gone, "Default": defaultPool})
}

func (s *Server) formSetPool(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	slots, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("slots")))
	if err != nil {
		s.back(w, r, "/pools", "Error: slots must be a whole number")
		return
	}
	action := "pool_create"
	if _, err := s.pool(r, name); err == nil {
		action = "pool_edit"
	}
	if err := s.setPool(r, store.Pool{Name: name, Slots: slots, Description: r.PostFormValue("description")}, action); err != nil {
		s.back(w, r, "/pools", "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, "/pools", "Saved "+name+".")
}

func (s *Server) formDeletePool(w http.ResponseWriter, r *http.Request) {
	name := param(r, "pool_name")
	if err := s.deletePool(r, name); err != nil {
		s.back(w, r, "/pools", "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, "/pools", "Deleted "+name+".")
}
