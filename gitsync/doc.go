// Package gitsync follows a git branch: it checks the branch head on an
// interval (or when triggered), and publishes each new revision as a
// complete tree swapped in atomically through a symlink, so readers never
// see a half-written or mixed tree. A failed sync (unreachable remote,
// bad credentials, deleted branch) is reported and retried with backoff
// while the last good revision keeps serving. It knows nothing about DAGs.
package gitsync
