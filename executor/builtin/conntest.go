package builtin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Test checks that a connection works without changing anything: SQL
// connections log in and ping the database, HTTP connections answer a GET
// of their base URL (any status below 500), Mattermost connections answer
// the server's ping (nothing is posted). It returns what it found; errors
// never carry the connection's password or a URL holding it.
func Test(ctx context.Context, c Connection) (string, error) {
	var target string
	switch c.Type {
	case "postgres", "postgresql", "snowflake":
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := Ping(ctx, c); err != nil {
			return "", fmt.Errorf("connection %s: %w", c.ID, err)
		}
		return fmt.Sprintf("connection %s: logged in to %s", c.ID, c.Masked()), nil
	case "http", "https":
		target = c.BaseURL() + "/"
	case "mattermost":
		target = c.BaseURL() + "/api/v4/system/ping" // Mattermost's health check; posts nothing
	default:
		return "", fmt.Errorf("connection %s: testing %s connections is not supported (http, https, mattermost, postgres and snowflake are)", c.ID, c.Type)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", fmt.Errorf("connection %s: not a valid address", c.ID)
	}
	if c.Login != "" && c.Type != "mattermost" {
		req.SetBasicAuth(c.Login, c.Password)
	}
	where := strings.TrimSuffix(target, "/")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("connection %s: %s unreachable: %w", c.ID, where, cleanDBError(err))
	}
	resp.Body.Close()
	msg := fmt.Sprintf("connection %s: %s answered HTTP %d", c.ID, where, resp.StatusCode)
	if resp.StatusCode >= 500 {
		return "", fmt.Errorf("%s", msg)
	}
	return msg, nil
}
