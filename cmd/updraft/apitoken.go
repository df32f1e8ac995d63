package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"updraft/web"
)

// apiCmd is `updraft api token USER` (a bearer token for /api/v2, for CI
// scripts that cannot hold a password) and `updraft api rotate-key` (a new
// signing key in the database; tokens signed with the old one stay valid
// until they expire).
func (m Main) apiCmd(ctx context.Context, args []string) int {
	const use = "usage: updraft api token USER [--expires DURATION] [--key-file F]\n       updraft api rotate-key"
	var expires *time.Duration
	var keyFile *string
	pos, st, code := m.storeCommand(ctx, "api", use, args, func(fl *flag.FlagSet) {
		expires = fl.Duration("expires", web.DefaultTokenTTL, "with token: how long the token lasts")
		keyFile = fl.String("key-file", m.Env("UPDRAFT_API_TOKEN_KEY_FILE"), "the server's --api-token-key-file, when it has one (env UPDRAFT_API_TOKEN_KEY_FILE)")
	})
	if code != 0 {
		return code
	}
	defer st.Close()
	tokens := web.NewTokens(st, *expires, *keyFile, time.Now)
	switch {
	case args[0] == "token" && len(pos) == 1:
		if *expires <= 0 {
			return m.fail(errors.New("--expires must be positive"))
		}
		if _, err := st.User(ctx, pos[0]); err != nil {
			return m.fail(fmt.Errorf("user %q: %w", pos[0], err))
		}
		tok, err := tokens.Issue(ctx, pos[0], *expires)
		if err != nil {
			return m.fail(err)
		}
		fmt.Fprintln(m.Stdout, tok)
		return 0
	case args[0] == "rotate-key" && len(pos) == 0:
		k, err := tokens.Rotate(ctx)
		if err != nil {
			return m.fail(err)
		}
		fmt.Fprintf(m.Stdout, "new signing key %s; tokens signed with the previous key stay valid until they expire\n", k.ID)
		return 0
	}
	fmt.Fprintln(m.Stderr, use)
	return 2
}
