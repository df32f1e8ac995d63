package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"updraft/executor/builtin"
	"updraft/store"
	"updraft/web"
)

// connectionsCmd is `updraft connections list | test ID`. Passwords are
// never printed.
func (m Main) connectionsCmd(ctx context.Context, args []string) int {
	const use = "usage: updraft connections list | test CONN_ID"
	conns := m.connections()
	switch {
	case len(args) == 1 && args[0] == "list":
		list, err := conns.List()
		if err != nil {
			return m.fail(err)
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CONN_ID\tTYPE\tCONNECTION\tFROM")
		for _, c := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ID, c.Type, c.Masked(), c.Source)
		}
		tw.Flush()
		return 0
	case len(args) == 2 && args[0] == "test":
		c, err := conns.Get(args[1])
		if err != nil {
			return m.fail(err)
		}
		msg, err := builtin.Test(ctx, c)
		if err != nil {
			fmt.Fprintln(m.Stdout, err)
			return 1
		}
		fmt.Fprintln(m.Stdout, msg)
		return 0
	}
	fmt.Fprintln(m.Stderr, use)
	return 2
}

// connectionsView shows the server's connections to the web UI and API:
// never a password or an extra.
type connectionsView struct{ c builtin.Connections }

func (v connectionsView) List() ([]web.ConnectionInfo, error) {
	list, err := v.c.List()
	if err != nil {
		return nil, err
	}
	out := make([]web.ConnectionInfo, 0, len(list))
	for _, c := range list {
		out = append(out, web.ConnectionInfo{ID: c.ID, Type: c.Type, Host: c.Host, Login: c.Login, Schema: c.Schema, Port: c.Port,
			Masked: c.Masked(), Source: c.Source})
	}
	return out, nil
}

func (v connectionsView) Test(ctx context.Context, id string) (string, error) {
	c, err := v.c.Get(id)
	if errors.Is(err, builtin.ErrNoConnection) {
		return "", fmt.Errorf("connection %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	return builtin.Test(ctx, c)
}
