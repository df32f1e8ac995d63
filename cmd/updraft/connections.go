package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
	"updraft/executor/builtin"
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
		var target string
		switch c.Type {
		case "postgres", "postgresql", "snowflake":
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := builtin.Ping(ctx, c); err != nil {
				fmt.Fprintf(m.Stdout, "connection %s: %s\n", c.ID, err)
				return 1
			}
			fmt.Fprintf(m.Stdout, "connection %s: logged in to %s\n", c.ID, c.Masked())
			return 0
		case "http", "https":
			target = c.BaseURL() + "/"
		case "mattermost":
			target = c.BaseURL() + "/api/v4/system/ping" // Mattermost's health check; posts nothing
		default:
			fmt.Fprintf(m.Stderr, "updraft: connection %s: testing %s connections is not supported (http, https, mattermost, postgres and snowflake are)\n", c.ID, c.Type)
			return 1
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			fmt.Fprintf(m.Stderr, "updraft: connection %s: not a valid address\n", c.ID)
			return 1
		}
		if c.Login != "" && c.Type != "mattermost" {
			req.SetBasicAuth(c.Login, c.Password)
		}
		resp, err := http.DefaultClient.Do(req)
		where := strings.TrimSuffix(target, "/")
		if err != nil {
			fmt.Fprintf(m.Stdout, "connection %s: %s unreachable: %v\n", c.ID, where, unwrapURLError(err))
			return 1
		}
		resp.Body.Close()
		fmt.Fprintf(m.Stdout, "connection %s: %s answered HTTP %d\n", c.ID, where, resp.StatusCode)
		if resp.StatusCode >= 500 {
			return 1
		}
		return 0
	}
	fmt.Fprintln(m.Stderr, use)
	return 2
}

// unwrapURLError drops the URL from a client error (it may carry secrets).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
