package web

import (
	"fmt"
	"net/http"
	"strings"

	"updraft/store"
	"updraft/web/ops"
)

// Connections are the operators' connections (see ops.Connections).
type Connections = ops.Connections

// ConnectionInfo is what may be shown of a connection.
type ConnectionInfo = ops.ConnectionInfo

func (s *Server) connectionList() ([]ConnectionInfo, error) {
	if s.opt.Connections == nil {
		return nil, nil
	}
	return s.opt.Connections.List()
}

type apiConnection struct {
	ID          string  `json:"connection_id"`
	Type        string  `json:"conn_type"`
	Description *string `json:"description"`
	Host        *string `json:"host"`
	Login       *string `json:"login"`
	Schema      *string `json:"schema"`
	Port        *int    `json:"port"`
}

func toAPIConnection(c ConnectionInfo) apiConnection {
	out := apiConnection{ID: c.ID, Type: c.Type, Host: nullable(c.Host), Login: nullable(c.Login), Schema: nullable(c.Schema)}
	if c.Port != 0 {
		out.Port = &c.Port
	}
	return out
}

func (s *Server) apiListConnections(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := s.connectionList()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ob := r.URL.Query().Get("order_by"); ob != "" {
		if err := sortBy(list, ob, map[string]func(a, b ConnectionInfo) int{
			"connection_id": func(a, b ConnectionInfo) int { return strings.Compare(a.ID, b.ID) },
			"conn_type":     func(a, b ConnectionInfo) int { return strings.Compare(a.Type, b.Type) },
		}); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	out := []apiConnection{}
	for _, c := range slice(list, p) {
		out = append(out, toAPIConnection(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"connections": out, "total_entries": len(list)})
}

// apiGetConnection answers as Airflow does for one connection, except
// that the extra is never sent (it may hold a private key): it is null.
func (s *Server) apiGetConnection(w http.ResponseWriter, r *http.Request) {
	id := param(r, "connection_id")
	list, err := s.connectionList()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, c := range list {
		if c.ID == id {
			writeJSON(w, http.StatusOK, struct {
				apiConnection
				Extra *string `json:"extra"`
			}{apiConnection: toAPIConnection(c)})
			return
		}
	}
	s.fail(w, r, fmt.Errorf("connection %q: %w", id, store.ErrNotFound))
}

func (s *Server) pageConnections(w http.ResponseWriter, r *http.Request) {
	list, err := s.connectionList()
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "connections.html", "Connections", "connections",
		map[string]any{"Connections": list, "Configured": s.opt.Connections != nil})
}

// formTestConnection tests one connection and shows the outcome.
func (s *Server) formTestConnection(w http.ResponseWriter, r *http.Request) {
	id := param(r, "conn_id")
	if s.opt.Connections == nil {
		s.back(w, r, "/connections", "Error: this server has no connections")
		return
	}
	msg, err := s.opt.Connections.Test(r.Context(), id)
	s.audit(r, "connection_test", "", "", "", "conn_id="+id)
	if err != nil {
		s.back(w, r, "/connections", "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, "/connections", msg)
}
