package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"updraft/store"
	"updraft/web"
)

// users is `updraft users create|delete|list|set-password`. Passwords are
// read from a file or stdin, never from the command line (where other
// users of the machine could read them).
func (m Main) users(ctx context.Context, args []string) int {
	const use = "usage: updraft users create USER --role Viewer|User|Op|Admin (--password-file F | --password-stdin) [--email E]\n" +
		"       updraft users set-password USER (--password-file F | --password-stdin)\n" +
		"       updraft users delete USER\n       updraft users list"
	var role, pwFile, email *string
	var pwStdin *bool
	pos, st, code := m.storeCommand(ctx, "users", use, args, func(fl *flag.FlagSet) {
		role = fl.String("role", "", "with create: the user's role")
		pwFile = fl.String("password-file", "", "read the password from this file")
		pwStdin = fl.Bool("password-stdin", false, "read the password from stdin")
		email = fl.String("email", "", "with create: the user's e-mail address")
	})
	if code != 0 {
		return code
	}
	defer st.Close()
	password := func() (string, error) {
		var b []byte
		var err error
		switch {
		case *pwFile != "" && *pwStdin:
			return "", fmt.Errorf("use --password-file or --password-stdin, not both")
		case *pwFile != "":
			b, err = os.ReadFile(*pwFile)
		case *pwStdin:
			b, err = io.ReadAll(io.LimitReader(m.Stdin, 4096))
		default:
			return "", fmt.Errorf("give the password with --password-file or --password-stdin")
		}
		return strings.TrimRight(string(b), "\r\n"), err
	}
	switch {
	case args[0] == "create" && len(pos) == 1:
		r, err := web.ParseRole(*role)
		if err != nil {
			return m.fail(err)
		}
		pw, err := password()
		if err != nil {
			return m.fail(err)
		}
		if err := web.CreateUser(ctx, st, pos[0], pw, r, time.Now()); err != nil {
			return m.fail(err)
		}
		if *email != "" {
			u, _ := st.User(ctx, pos[0])
			u.Email = *email
			if err := st.UpdateUser(ctx, u); err != nil {
				return m.fail(err)
			}
		}
		_ = st.Audit(ctx, store.AuditEntry{At: time.Now(), Actor: "cli", Action: "user_create", Detail: pos[0] + " role=" + string(r)})
		fmt.Fprintf(m.Stdout, "user %s created with role %s\n", pos[0], r)
	case args[0] == "set-password" && len(pos) == 1:
		u, err := st.User(ctx, pos[0])
		if err != nil {
			return m.fail(err)
		}
		pw, err := password()
		if err != nil {
			return m.fail(err)
		}
		if u.PasswordHash, err = web.HashPassword(pw); err != nil {
			return m.fail(err)
		}
		if err := st.UpdateUser(ctx, u); err != nil {
			return m.fail(err)
		}
		_ = st.Audit(ctx, store.AuditEntry{At: time.Now(), Actor: "cli", Action: "user_set_password", Detail: pos[0]})
		fmt.Fprintf(m.Stdout, "password of %s changed; their sessions ended\n", pos[0])
	case args[0] == "delete" && len(pos) == 1:
		if err := st.DeleteUser(ctx, pos[0]); err != nil {
			return m.fail(err)
		}
		_ = st.Audit(ctx, store.AuditEntry{At: time.Now(), Actor: "cli", Action: "user_delete", Detail: pos[0]})
		fmt.Fprintf(m.Stdout, "user %s deleted\n", pos[0])
	case args[0] == "list" && len(pos) == 0:
		users, err := st.Users(ctx)
		if err != nil {
			return m.fail(err)
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tROLE\tEMAIL\tCREATED\tLAST LOGIN")
		for _, u := range users {
			last := "never"
			if u.LastLogin != nil {
				last = u.LastLogin.UTC().Format("2006-01-02 15:04")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Username, u.Role, u.Email, u.CreatedAt.UTC().Format("2006-01-02 15:04"), last)
		}
		tw.Flush()
	default:
		fmt.Fprintln(m.Stderr, use)
		return 2
	}
	return 0
}
