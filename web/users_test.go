package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Admins manage users through Airflow's /users and /roles endpoints: what
// they set takes effect at once, bad input is refused with a reason, and
// the last Admin cannot be removed or demoted.
func TestUsersAPI(t *testing.T) {
	e := secEnv(t)
	call := func(method, path, body string, wantStatus int) map[string]any {
		t.Helper()
		status, out := e.call(method, path, body, "admin")
		if status != wantStatus {
			t.Fatalf("%s %s: %d %s, want %d", method, path, status, out, wantStatus)
		}
		var v map[string]any
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("%s %s: %v in %s", method, path, err, out)
			}
		}
		return v
	}
	// Airflow's list of roles becomes the most allowed one.
	u := call("POST", "/api/v1/users", `{"username": "dana", "password": "dana-password", "first_name": "Dana",
		"roles": [{"name": "Viewer"}, {"name": "user"}]}`, 200)
	if roles := u["roles"].([]any); len(roles) != 1 || roles[0].(map[string]any)["name"] != "User" {
		t.Errorf("roles: %v", u["roles"])
	}
	if _, has := u["email"]; has {
		t.Errorf("an empty e-mail must be left out (Airflow's schema wants one character): %v", u)
	}
	if _, has := u["password"]; has {
		t.Errorf("password in a response: %v", u)
	}
	if status, out := e.callAs("POST", "/api/v1/dags/sec/dagRuns", `{}`, "dana", "dana-password"); status != 200 {
		t.Fatalf("dana (User) triggers: %d %s", status, out)
	}
	// Refusals, each with its reason.
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/api/v1/users", `{"username": "dana", "password": "another-password"}`, "409"},
		{"POST", "/api/v1/users", `{"username": "eve", "password": "short"}`, "too short"},
		{"POST", "/api/v1/users", `{"username": "eve", "password": "long-enough", "roles": [{"name": "Public"}]}`, "unknown role"},
		{"POST", "/api/v1/users", `{"username": "<script>", "password": "long-enough"}`, "username"},
		{"POST", "/api/v1/users", `{"username": "eve", "password": "long-enough", "email": "not an address"}`, "e-mail"},
		{"POST", "/api/v1/users", `{"password": "long-enough"}`, "required"},
		{"PATCH", "/api/v1/users/dana", `{"username": "dana2"}`, "renamed"},
		{"PATCH", "/api/v1/users/dana?update_mask=colour", `{}`, "unknown field"},
		{"PATCH", "/api/v1/users/nobody", `{"first_name": "N"}`, "404"},
		{"DELETE", "/api/v1/users/admin", ``, "last Admin"},
		{"PATCH", "/api/v1/users/admin", `{"roles": [{"name": "Op"}]}`, "last Admin"},
	} {
		status, out := e.call(c.method, c.path, c.body, "admin")
		if status < 400 || !strings.Contains(out, c.want) && !strings.Contains(out, `"status":`+c.want) {
			t.Errorf("%s %s %s: %d %s, want a refusal saying %q", c.method, c.path, c.body, status, out, c.want)
		}
	}
	// update_mask limits what changes; a new role ends basic-auth access at once.
	u = call("PATCH", "/api/v1/users/dana?update_mask=roles", `{"first_name": "Ignored", "roles": [{"name": "Viewer"}]}`, 200)
	if u["first_name"] != "Dana" || u["roles"].([]any)[0].(map[string]any)["name"] != "Viewer" {
		t.Errorf("patched: %v", u)
	}
	if status, _ := e.callAs("POST", "/api/v1/dags/sec/dagRuns", `{}`, "dana", "dana-password"); status != http.StatusForbidden {
		t.Errorf("dana, now a Viewer, triggers: %d", status)
	}
	call("PATCH", "/api/v1/users/dana", `{"password": "a-new-password", "email": "dana@example.com"}`, 200)
	if status, _ := e.callAs("GET", "/api/v1/dags", ``, "dana", "dana-password"); status != http.StatusUnauthorized {
		t.Errorf("the old password still works: %d", status)
	}
	if status, _ := e.callAs("GET", "/api/v1/dags", ``, "dana", "a-new-password"); status != 200 {
		t.Errorf("the new password: %d", status)
	}
	if u = call("GET", "/api/v1/users/dana", ``, 200); u["email"] != "dana@example.com" {
		t.Errorf("get: %v", u)
	}
	list := call("GET", "/api/v1/users?order_by=-username&limit=2", ``, 200)
	if list["total_entries"] != float64(5) || len(list["users"].([]any)) != 2 || list["users"].([]any)[0].(map[string]any)["username"] != "viewer" {
		t.Errorf("list: %v", list)
	}
	call("DELETE", "/api/v1/users/dana", ``, 204)
	if status, _ := e.callAs("GET", "/api/v1/dags", ``, "dana", "a-new-password"); status != http.StatusUnauthorized {
		t.Errorf("a deleted user still gets in: %d", status)
	}
	// A second Admin may be demoted, and then the first no longer can be.
	call("PATCH", "/api/v1/users/op", `{"roles": [{"name": "Admin"}]}`, 200)
	call("PATCH", "/api/v1/users/admin", `{"roles": [{"name": "User"}]}`, 200)
	if status, out := e.callAs("PATCH", "/api/v1/users/op", `{"roles": [{"name": "Op"}]}`, "op", "op-password"); status != 400 || !strings.Contains(out, "last Admin") {
		t.Errorf("demoting the last Admin: %d %s", status, out)
	}

	// Roles say what they allow, in Airflow's words.
	roles := map[string]map[string]bool{}
	status, out := e.callAs("GET", "/api/v1/roles", ``, "op", "op-password")
	var rc struct {
		Roles []struct {
			Name    string
			Actions []struct{ Action, Resource struct{ Name string } }
		}
		TotalEntries int `json:"total_entries"`
	}
	if err := json.Unmarshal([]byte(out), &rc); status != 200 || err != nil || rc.TotalEntries != 4 {
		t.Fatalf("roles: %d %v %s", status, err, out)
	}
	for _, r := range rc.Roles {
		roles[r.Name] = map[string]bool{}
		for _, a := range r.Actions {
			roles[r.Name][a.Action.Name+" on "+a.Resource.Name] = true
		}
	}
	if !roles["Viewer"]["can_read on DAGs"] || roles["Viewer"]["can_edit on DAGs"] || !roles["User"]["can_create on DAG Runs"] ||
		roles["Op"]["can_read on Variables"] || !roles["Admin"]["can_delete on Users"] {
		t.Errorf("role permissions: %v", roles)
	}
	if status, _ := e.callAs("GET", "/api/v1/roles/Nobody", ``, "op", "op-password"); status != 404 {
		t.Errorf("unknown role: %d", status)
	}

	log, _ := e.st.AuditLog(e.ctx, 100)
	seen := map[string]string{}
	for _, entry := range log {
		if strings.HasPrefix(entry.Action, "user_") {
			seen[entry.Action] = entry.Actor
		}
	}
	if seen["user_create"] != "admin" || seen["user_delete"] != "admin" || seen["user_edit"] == "" {
		t.Errorf("audit: %v", seen)
	}
	for _, entry := range log {
		if strings.Contains(entry.Detail, "a-new-password") || strings.Contains(entry.Detail, "dana-password") {
			t.Errorf("a password in the audit log: %+v", entry)
		}
	}
}

// The Users page does the same from a browser session.
func TestUsersPage(t *testing.T) {
	e := secEnv(t)
	b, _ := e.login("admin", "admin-password")
	form := func(path string, v url.Values) string {
		t.Helper()
		v.Set("csrf_token", b.csrf)
		req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
		loc := resp.Header.Get("Location")
		_, page := b.do("GET", loc, "", false)
		return loc + " " + flashText(page)
	}
	if loc := form("/users", url.Values{"username": {"fred"}, "role": {"Op"}, "password": {"fred-password"}, "email": {"fred@example.com"}}); !strings.Contains(loc, "Created fred") {
		t.Fatalf("create: %s", loc)
	}
	status, page := b.do("GET", "/users", "", false)
	if status != 200 || !strings.Contains(page, "<code>fred</code>") || !strings.Contains(page, `value="fred@example.com"`) ||
		strings.Contains(page, "fred-password") || strings.Contains(page, "$2a$") {
		t.Fatalf("users page: %d\n%s", status, page)
	}
	fred, _ := e.login("fred", "fred-password")
	if fred == nil {
		t.Fatal("fred cannot log in")
	}
	if loc := form("/users/fred", url.Values{"role": {"Viewer"}, "email": {""}, "password": {""}}); !strings.Contains(loc, "Saved fred") {
		t.Fatalf("edit: %s", loc)
	}
	if u, _ := e.st.User(e.ctx, "fred"); u.Role != "Viewer" || u.Email != "" {
		t.Errorf("after edit: %+v", u)
	}
	// The new role ended fred's session.
	if status, _ := fred.do("GET", "/", "", false); status != http.StatusSeeOther {
		t.Errorf("fred's old session after a role change: %d", status)
	}
	if loc := form("/users/admin/delete", url.Values{}); !strings.Contains(loc, "Error: refused") {
		t.Errorf("deleting the last admin: %s", loc)
	}
	if loc := form("/users", url.Values{"username": {"fred"}, "role": {"Op"}, "password": {"fred-password"}}); !strings.Contains(loc, "already exists") {
		t.Errorf("a second fred: %s", loc)
	}
	if loc := form("/users/fred/delete", url.Values{}); !strings.Contains(loc, "Deleted fred") {
		t.Errorf("delete: %s", loc)
	}
	// Without the CSRF token nothing changes.
	if status, _ := b.do("POST", "/users/viewer/delete", "", false, "Content-Type", "application/x-www-form-urlencoded"); status != http.StatusForbidden {
		t.Errorf("delete without a CSRF token: %d", status)
	}
	if _, err := e.st.User(e.ctx, "viewer"); err != nil {
		t.Errorf("viewer is gone: %v", err)
	}
	// Viewers do not see the page or its link.
	v, _ := e.login("viewer", "viewer-password")
	if status, _ := v.do("GET", "/users", "", false); status != http.StatusForbidden {
		t.Errorf("viewer GET /users: %d", status)
	}
	if _, home := v.do("GET", "/", "", false); strings.Contains(home, `href="/users"`) {
		t.Error("viewer sees the Users link")
	}
}
