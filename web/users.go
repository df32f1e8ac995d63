package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"updraft/store"
)

// User management for Admins: the REST API's /users and /roles (Airflow's
// shapes) and the Users page share the rules below. updraft gives each
// user one role; Airflow's list of roles maps onto the most allowed one,
// which is what Airflow's union of permissions amounts to, since each of
// our roles can do what the one before it can.

// userChange is what an Admin may change of a user; nil fields stay.
type userChange struct {
	Role                       *Role
	Email, FirstName, LastName *string
	Password                   *string
}

// createUser validates and adds a user, then audits it.
func (s *Server) createUser(r *http.Request, u store.User, password string) (store.User, error) {
	if !validUsername(u.Username) {
		return u, badRequest("username %q: use 1-64 letters, digits, '.', '_', '-' or '@'", u.Username)
	}
	if err := checkEmail(u.Email); err != nil {
		return u, err
	}
	role, err := ParseRole(u.Role)
	if err != nil {
		return u, badRequest("%v", err)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return u, badRequest("%v", err)
	}
	s.teach(password)
	u.Role, u.PasswordHash, u.CreatedAt = string(role), hash, s.now()
	if err := s.st.CreateUser(r.Context(), u); err != nil {
		return u, err
	}
	s.audit(r, "user_create", "", "", "", u.Username+" role="+u.Role)
	return u, nil
}

// changeUser applies c to a user. Taking the Admin role from the last
// Admin is refused: nobody could manage users afterwards. A new role or
// password ends the user's sessions (the store does that).
func (s *Server) changeUser(r *http.Request, username string, c userChange) (store.User, error) {
	var out store.User
	var changed []string
	err := s.st.InTx(r.Context(), func(tx *store.Store) error {
		u, err := tx.User(r.Context(), username)
		if err != nil {
			return err
		}
		if c.Role != nil && *c.Role != Role(u.Role) {
			if Role(u.Role) == RoleAdmin {
				if err := lastAdminGuard(r.Context(), tx, username, "take the Admin role from"); err != nil {
					return err
				}
			}
			u.Role = string(*c.Role)
			changed = append(changed, "role="+u.Role)
		}
		if c.Email != nil && *c.Email != u.Email {
			if err := checkEmail(*c.Email); err != nil {
				return err
			}
			u.Email = *c.Email
			changed = append(changed, "email")
		}
		if c.FirstName != nil && *c.FirstName != u.FirstName {
			u.FirstName = *c.FirstName
			changed = append(changed, "first_name")
		}
		if c.LastName != nil && *c.LastName != u.LastName {
			u.LastName = *c.LastName
			changed = append(changed, "last_name")
		}
		if c.Password != nil {
			if u.PasswordHash, err = HashPassword(*c.Password); err != nil {
				return badRequest("%v", err)
			}
			s.teach(*c.Password)
			changed = append(changed, "password")
		}
		out = u
		if len(changed) == 0 {
			return nil
		}
		return tx.UpdateUser(r.Context(), u)
	})
	if err == nil && len(changed) > 0 {
		s.audit(r, "user_edit", "", "", "", username+" "+strings.Join(changed, " "))
	}
	return out, err
}

// removeUser deletes a user and their sessions; the last Admin stays.
func (s *Server) removeUser(r *http.Request, username string) error {
	err := s.st.InTx(r.Context(), func(tx *store.Store) error {
		u, err := tx.User(r.Context(), username)
		if err != nil {
			return err
		}
		if Role(u.Role) == RoleAdmin {
			if err := lastAdminGuard(r.Context(), tx, username, "delete"); err != nil {
				return err
			}
		}
		return tx.DeleteUser(r.Context(), username)
	})
	if err == nil {
		s.audit(r, "user_delete", "", "", "", username)
	}
	return err
}

func lastAdminGuard(ctx context.Context, st *store.Store, username, what string) error {
	users, err := st.Users(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		if u.Username != username && Role(u.Role) == RoleAdmin {
			return nil
		}
	}
	return badRequest("refused to %s %s: it is the last Admin, and nobody could manage users afterwards", what, username)
}

func checkEmail(email string) error {
	if email == "" {
		return nil
	}
	if len(email) > 254 || strings.ContainsAny(email, " \t\r\n<>\"") || strings.Count(email, "@") != 1 ||
		strings.HasPrefix(email, "@") || strings.HasSuffix(email, "@") {
		return badRequest("e-mail address %q is not valid", email)
	}
	return nil
}

// roleOf turns Airflow's list of role names into one role: the most
// allowed of them. An empty list is Viewer, the least allowed.
func roleOf(names []string) (Role, error) {
	best := -1
	for _, n := range names {
		role, err := ParseRole(n)
		if err != nil {
			return "", badRequest("%v", err)
		}
		for i, known := range Roles {
			if known == role && i > best {
				best = i
			}
		}
	}
	if best < 0 {
		return RoleViewer, nil
	}
	return Roles[best], nil
}

// --- REST API ---

type apiRoleRef struct {
	Name string `json:"name"`
}

type apiUser struct {
	FirstName        string       `json:"first_name"`
	LastName         string       `json:"last_name"`
	Username         string       `json:"username"`
	Email            *string      `json:"email,omitempty"` // Airflow's schema wants at least one character
	Active           bool         `json:"active"`
	LastLogin        *string      `json:"last_login"`
	LoginCount       *int         `json:"login_count"`
	FailedLoginCount *int         `json:"failed_login_count"`
	Roles            []apiRoleRef `json:"roles"`
	CreatedOn        *string      `json:"created_on"`
	ChangedOn        *string      `json:"changed_on"`
}

func toAPIUser(u store.User) apiUser {
	created := apiTime(u.CreatedAt)
	var email *string
	if u.Email != "" {
		email = &u.Email
	}
	return apiUser{FirstName: u.FirstName, LastName: u.LastName, Username: u.Username, Email: email, Active: true,
		LastLogin: apiTimePtr(u.LastLogin), Roles: []apiRoleRef{{Name: u.Role}}, CreatedOn: &created}
}

// userBody is Airflow's User in a request.
type userBody struct {
	Username  *string       `json:"username"`
	Password  *string       `json:"password"`
	Email     *string       `json:"email"`
	FirstName *string       `json:"first_name"`
	LastName  *string       `json:"last_name"`
	Roles     *[]apiRoleRef `json:"roles"`
}

func (b userBody) roleNames() []string {
	if b.Roles == nil {
		return nil
	}
	names := make([]string, 0, len(*b.Roles))
	for _, r := range *b.Roles {
		names = append(names, r.Name)
	}
	return names
}

func (s *Server) apiListUsers(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	users, err := s.st.Users(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ob := r.URL.Query().Get("order_by"); ob != "" {
		if err := sortBy(users, ob, map[string]func(a, b store.User) int{
			"username":   func(a, b store.User) int { return strings.Compare(a.Username, b.Username) },
			"email":      func(a, b store.User) int { return strings.Compare(a.Email, b.Email) },
			"first_name": func(a, b store.User) int { return strings.Compare(a.FirstName, b.FirstName) },
			"last_name":  func(a, b store.User) int { return strings.Compare(a.LastName, b.LastName) },
			"created_on": func(a, b store.User) int { return a.CreatedAt.Compare(b.CreatedAt) },
		}); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	out := []apiUser{}
	for _, u := range slice(users, p) {
		out = append(out, toAPIUser(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out, "total_entries": len(users)})
}

func (s *Server) apiGetUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.st.User(r.Context(), param(r, "username"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIUser(u))
}

func (s *Server) apiCreateUser(w http.ResponseWriter, r *http.Request) {
	var b userBody
	if err := readJSON(r, &b); err != nil {
		s.fail(w, r, err)
		return
	}
	if b.Username == nil || b.Password == nil {
		s.fail(w, r, badRequest("username and password are required"))
		return
	}
	role, err := roleOf(b.roleNames())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u := store.User{Username: *b.Username, Role: string(role)}
	u.Email, u.FirstName, u.LastName = deref(b.Email), deref(b.FirstName), deref(b.LastName)
	if u, err = s.createUser(r, u, *b.Password); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIUser(u))
}

// apiPatchUser follows Airflow: the fields in update_mask, or every field
// the body has. A user is not renamed: history names them.
func (s *Server) apiPatchUser(w http.ResponseWriter, r *http.Request) {
	username := param(r, "username")
	var b userBody
	if err := readJSON(r, &b); err != nil {
		s.fail(w, r, err)
		return
	}
	if b.Username != nil && *b.Username != username {
		s.fail(w, r, badRequest("users are not renamed: the username in the body (%q) differs from the one in the path (%q)", *b.Username, username))
		return
	}
	mask := multi(r, "update_mask")
	want := func(field string) bool { return len(mask) == 0 || contains(mask, field) }
	for _, f := range mask {
		if !contains([]string{"first_name", "last_name", "email", "roles", "password", "username"}, f) {
			s.fail(w, r, badRequest("update_mask: unknown field %q", f))
			return
		}
	}
	var c userChange
	if want("roles") && b.Roles != nil {
		role, err := roleOf(b.roleNames())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		c.Role = &role
	}
	if want("email") {
		c.Email = b.Email
	}
	if want("first_name") {
		c.FirstName = b.FirstName
	}
	if want("last_name") {
		c.LastName = b.LastName
	}
	if want("password") {
		c.Password = b.Password
	}
	u, err := s.changeUser(r, username, c)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIUser(u))
}

func (s *Server) apiDeleteUser(w http.ResponseWriter, r *http.Request) {
	if err := s.removeUser(r, param(r, "username")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type apiAction struct {
	Action   apiRoleRef `json:"action"`
	Resource apiRoleRef `json:"resource"`
}

type apiRole struct {
	Name    string      `json:"name"`
	Actions []apiAction `json:"actions"`
}

// rolePermissions says, in Airflow's words, what each permission level
// lets a role do.
var rolePermissions = map[perm][][2]string{
	permRead: {{"can_read", "DAGs"}, {"can_read", "DAG Runs"}, {"can_read", "Task Instances"}, {"can_read", "Task Logs"},
		{"can_read", "ImportError"}, {"can_read", "Audit Logs"}, {"can_read", "Pools"}, {"can_read", "Website"}},
	permAct: {{"can_edit", "DAGs"}, {"can_create", "DAG Runs"}, {"can_edit", "DAG Runs"}, {"can_edit", "Task Instances"},
		{"can_delete", "Task Instances"}},
	permOp: {{"can_create", "Pools"}, {"can_edit", "Pools"}, {"can_delete", "Pools"}},
	permAdmin: {{"can_read", "Variables"}, {"can_create", "Variables"}, {"can_edit", "Variables"}, {"can_delete", "Variables"},
		{"can_read", "Users"}, {"can_create", "Users"}, {"can_edit", "Users"}, {"can_delete", "Users"}, {"can_read", "Roles"}},
}

func toAPIRole(role Role) apiRole {
	out := apiRole{Name: string(role), Actions: []apiAction{}}
	for _, p := range []perm{permRead, permAct, permOp, permAdmin} {
		if !role.can(p) {
			continue
		}
		for _, ar := range rolePermissions[p] {
			out.Actions = append(out.Actions, apiAction{Action: apiRoleRef{ar[0]}, Resource: apiRoleRef{ar[1]}})
		}
	}
	return out
}

func (s *Server) apiListRoles(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	roles := make([]apiRole, 0, len(Roles))
	for _, role := range Roles {
		roles = append(roles, toAPIRole(role))
	}
	if ob := r.URL.Query().Get("order_by"); ob != "" {
		if err := sortBy(roles, ob, map[string]func(a, b apiRole) int{
			"name": func(a, b apiRole) int { return strings.Compare(a.Name, b.Name) },
		}); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"roles": slice(roles, p), "total_entries": len(roles)})
}

func (s *Server) apiGetRole(w http.ResponseWriter, r *http.Request) {
	name := param(r, "role_name")
	for _, role := range Roles {
		if string(role) == name {
			writeJSON(w, http.StatusOK, toAPIRole(role))
			return
		}
	}
	s.fail(w, r, fmt.Errorf("role %q: %w", name, store.ErrNotFound))
}

// --- the Users page ---

type userRow struct {
	Username, Role, Email, Name, Created, LastLogin string
	Self                                            bool
}

func (s *Server) pageUsers(w http.ResponseWriter, r *http.Request) {
	users, err := s.st.Users(r.Context())
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	me := sessionOf(r).User
	rows := make([]userRow, 0, len(users))
	for _, u := range users {
		row := userRow{Username: u.Username, Role: u.Role, Email: u.Email, Name: strings.TrimSpace(u.FirstName + " " + u.LastName),
			Created: u.CreatedAt.UTC().Format("2006-01-02 15:04"), LastLogin: "never", Self: u.Username == me}
		if u.LastLogin != nil {
			row.LastLogin = u.LastLogin.UTC().Format("2006-01-02 15:04")
		}
		rows = append(rows, row)
	}
	s.render(w, r, http.StatusOK, "users.html", "Users", "users", map[string]any{"Users": rows, "Roles": Roles})
}

func (s *Server) formCreateUser(w http.ResponseWriter, r *http.Request) {
	u := store.User{Username: strings.TrimSpace(r.PostFormValue("username")), Role: r.PostFormValue("role"),
		Email: strings.TrimSpace(r.PostFormValue("email")), FirstName: strings.TrimSpace(r.PostFormValue("first_name")),
		LastName: strings.TrimSpace(r.PostFormValue("last_name"))}
	if _, err := s.createUser(r, u, r.PostFormValue("password")); err != nil {
		s.back(w, r, "/users", "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, "/users", "Created "+u.Username+".")
}

// formEditUser changes a user's role and e-mail address, and their
// password when a new one is given.
func (s *Server) formEditUser(w http.ResponseWriter, r *http.Request) {
	username := param(r, "username")
	var c userChange
	if v := r.PostFormValue("role"); v != "" {
		role, err := ParseRole(v)
		if err != nil {
			s.back(w, r, "/users", "Error: "+err.Error())
			return
		}
		c.Role = &role
	}
	if _, ok := r.PostForm["email"]; ok {
		email := strings.TrimSpace(r.PostFormValue("email"))
		c.Email = &email
	}
	if pw := r.PostFormValue("password"); pw != "" {
		c.Password = &pw
	}
	if _, err := s.changeUser(r, username, c); err != nil {
		s.back(w, r, "/users", "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, "/users", "Saved "+username+".")
}

func (s *Server) formDeleteUser(w http.ResponseWriter, r *http.Request) {
	username := param(r, "username")
	if err := s.removeUser(r, username); err != nil {
		s.back(w, r, "/users", "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, "/users", "Deleted "+username+".")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
