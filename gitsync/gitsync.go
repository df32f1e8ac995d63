package gitsync

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Auth says how to authenticate. Secrets are read from files at every
// attempt, so a rotated credential is picked up without a restart.
type Auth struct {
	Username       string // HTTPS user ("git" when only a token is given)
	PasswordFile   string // HTTPS password or token
	SSHKeyFile     string // SSH private key
	KnownHostsFile string // SSH known_hosts; required with SSHKeyFile
}

// Options configure a Syncer.
type Options struct {
	URL      string        // https://, ssh://, git@host:repo, git://
	Branch   string        // e.g. master
	Path     string        // the folder of the repository to publish ("" = all)
	Root     string        // private working folder; readers use Link()
	Interval time.Duration // between checks (default 60 s)
	Auth     Auth
	Keep     int // older revisions kept for readers still in them (default 2)
	Log      *slog.Logger
}

// Revision is a published tree.
type Revision struct {
	Hash string    // the commit
	Dir  string    // the published folder (Options.Path inside the commit)
	At   time.Time // when it was published
}

// Status is the state of the sync, for health checks, metrics and the UI.
type Status struct {
	Current             Revision
	LastAttempt         time.Time
	LastSuccess         time.Time
	LastError           string // "" after a success
	ConsecutiveFailures int
	Syncs, Changes      int
}

// Syncer follows a branch. It is safe for concurrent use.
type Syncer struct {
	opts    Options
	log     *slog.Logger
	trigger chan struct{}

	mu        sync.Mutex
	status    Status
	onPublish []func(Revision)
}

// New returns a Syncer; it publishes nothing until Sync or Run.
func New(opts Options) (*Syncer, error) {
	if opts.URL == "" || opts.Branch == "" || opts.Root == "" {
		return nil, errors.New("gitsync: URL, branch and root are required")
	}
	if opts.Interval <= 0 {
		opts.Interval = 60 * time.Second
	}
	if opts.Keep <= 0 {
		opts.Keep = 2
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Auth.SSHKeyFile != "" && opts.Auth.KnownHostsFile == "" {
		return nil, errors.New("gitsync: an SSH key needs a known_hosts file (host keys are always checked)")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, err
	}
	opts.Root = root
	opts.Path = strings.Trim(path.Clean("/"+filepath.ToSlash(opts.Path)), "/")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("gitsync: %w", err)
	}
	s := &Syncer{opts: opts, log: opts.Log, trigger: make(chan struct{}, 1)}
	// A revision published by an earlier process keeps serving, if it was
	// published for the same folder of the repository.
	if target, err := os.Readlink(s.Link()); err == nil {
		hash := strings.TrimSuffix(strings.TrimPrefix(target, "rev-"), s.pathSuffix())
		if _, err := hex.DecodeString(hash); err == nil && target == s.revName(hash) {
			s.status.Current = Revision{Hash: hash, Dir: filepath.Join(root, target)}
			if fi, err := os.Lstat(s.Link()); err == nil {
				s.status.Current.At = fi.ModTime()
			}
		}
	}
	return s, nil
}

// revName names the folder a revision is published in. It carries a
// digest of Options.Path, so a restart with another path never serves a
// tree exported for the old one.
func (s *Syncer) revName(hash string) string { return "rev-" + hash + s.pathSuffix() }

func (s *Syncer) pathSuffix() string {
	if s.opts.Path == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s.opts.Path))
	return "-" + hex.EncodeToString(sum[:4])
}

// RevisionDir returns the folder revision hash was published in, while it
// is still on disk (the current one and the Keep before it).
func (s *Syncer) RevisionDir(hash string) (string, error) {
	if _, err := hex.DecodeString(hash); err != nil || hash == "" {
		return "", fmt.Errorf("%q is not a revision", hash)
	}
	dir := filepath.Join(s.opts.Root, s.revName(hash))
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", fmt.Errorf("revision %s is no longer on disk (the server keeps the current revision and %d before it: --git-keep)", short(hash), s.opts.Keep)
	}
	return dir, nil
}

// Link is the symlink readers follow: it always points at a complete tree.
// Resolve it once per read (filepath.EvalSymlinks) to stay in one revision.
func (s *Syncer) Link() string { return filepath.Join(s.opts.Root, "current") }

// Current returns the published revision, and false before the first.
func (s *Syncer) Current() (Revision, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status.Current, s.status.Current.Hash != ""
}

// Status returns the sync's state.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// OnPublish registers fn, called after each new revision is published.
func (s *Syncer) OnPublish(fn func(Revision)) {
	s.mu.Lock()
	s.onPublish = append(s.onPublish, fn)
	s.mu.Unlock()
}

// Trigger asks Run for a sync now (a push webhook, an API call).
func (s *Syncer) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Run syncs now, then every interval, or when triggered, until ctx ends.
// After a failure it retries with exponential backoff (2 s, 4 s, ... up to
// the interval); the last good revision keeps serving meanwhile.
func (s *Syncer) Run(ctx context.Context) error {
	backoff := 2 * time.Second
	for {
		wait := s.opts.Interval
		if _, err := s.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait = min(backoff, s.opts.Interval)
			backoff *= 2
		} else {
			backoff = 2 * time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.trigger:
		case <-time.After(wait):
		}
	}
}

// Sync checks the branch once and publishes its head if it changed. It
// reports whether a new revision was published.
func (s *Syncer) Sync(ctx context.Context) (bool, error) {
	now := time.Now()
	changed, err := s.sync(ctx)
	s.mu.Lock()
	s.status.LastAttempt = now
	s.status.Syncs++
	if err != nil {
		s.status.LastError = err.Error()
		s.status.ConsecutiveFailures++
	} else {
		s.status.LastError, s.status.ConsecutiveFailures, s.status.LastSuccess = "", 0, now
	}
	failures := s.status.ConsecutiveFailures
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("git sync failed; the last good revision keeps serving", "url", redact(s.opts.URL),
			"branch", s.opts.Branch, "failures", failures, "err", err)
	}
	return changed, err
}

func (s *Syncer) sync(ctx context.Context) (bool, error) {
	auth, err := s.auth()
	if err != nil {
		return false, err
	}
	head, err := s.remoteHead(ctx, auth)
	if err != nil {
		return false, err
	}
	if cur, ok := s.Current(); ok && cur.Hash == head.String() {
		if _, err := os.Stat(cur.Dir); err == nil {
			return false, nil
		}
		// The published folder was removed behind our back: fetch it again.
		s.log.Warn("published revision is missing on disk; fetching it again", "revision", short(cur.Hash), "dir", cur.Dir)
	}
	// A fresh shallow clone into memory per change keeps memory and disk
	// flat (go-git never garbage-collects a long-lived store) and makes
	// force-pushes nothing special.
	repo, err := git.CloneContext(ctx, memory.NewStorage(), nil, &git.CloneOptions{
		URL: s.opts.URL, Auth: auth, ReferenceName: plumbing.NewBranchReferenceName(s.opts.Branch),
		SingleBranch: true, Depth: 1, Tags: git.NoTags,
	})
	if err != nil {
		return false, fmt.Errorf("fetch %s of %s: %w", s.opts.Branch, redact(s.opts.URL), err)
	}
	ref, err := repo.Head()
	if err != nil {
		return false, fmt.Errorf("fetched branch has no head: %w", err)
	}
	commit, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return false, fmt.Errorf("commit %s: %w", ref.Hash(), err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return false, fmt.Errorf("commit %s: %w", ref.Hash(), err)
	}
	if p := s.opts.Path; p != "" {
		if tree, err = tree.Tree(p); err != nil {
			return false, fmt.Errorf("revision %s has no folder %q: %w", short(ref.Hash().String()), p, err)
		}
	}
	rev, err := s.publish(ref.Hash().String(), tree)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.status.Current = rev
	s.status.Changes++
	hooks := append([]func(Revision){}, s.onPublish...)
	s.mu.Unlock()
	s.log.Info("published a new revision", "branch", s.opts.Branch, "revision", short(rev.Hash))
	for _, fn := range hooks {
		fn(rev)
	}
	s.cleanup(rev.Hash)
	return true, nil
}

func (s *Syncer) remoteHead(ctx context.Context, auth transport.AuthMethod) (plumbing.Hash, error) {
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{s.opts.URL}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: auth})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		refs, err = nil, nil // no branches at all: reported as a missing branch below
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("list %s: %w", redact(s.opts.URL), err)
	}
	want := plumbing.NewBranchReferenceName(s.opts.Branch)
	for _, r := range refs {
		if r.Name() == want {
			return r.Hash(), nil
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("branch %q not found on %s (deleted?)", s.opts.Branch, redact(s.opts.URL))
}

// publish writes the tree to rev-<hash> (under a temporary name first)
// and points the link at it with an atomic rename.
func (s *Syncer) publish(hash string, tree *object.Tree) (Revision, error) {
	name := s.revName(hash)
	final := filepath.Join(s.opts.Root, name)
	if _, err := os.Stat(final); err != nil {
		tmp := filepath.Join(s.opts.Root, ".tmp-"+hash[:12]+"-"+randomSuffix())
		if err := writeTree(tree, tmp); err != nil {
			os.RemoveAll(tmp)
			return Revision{}, fmt.Errorf("write revision %s: %w", short(hash), err)
		}
		if err := os.Rename(tmp, final); err != nil {
			os.RemoveAll(tmp)
			return Revision{}, fmt.Errorf("publish revision %s: %w", short(hash), err)
		}
	}
	link := filepath.Join(s.opts.Root, ".current-"+randomSuffix())
	if err := os.Symlink(name, link); err != nil {
		return Revision{}, err
	}
	if err := os.Rename(link, s.Link()); err != nil { // atomic swap
		os.Remove(link)
		return Revision{}, err
	}
	return Revision{Hash: hash, Dir: final, At: time.Now()}, nil
}

// writeTree checks tree out into dir as git does, symbolic links
// included (a DAG folder may link one file to another), and never writes
// outside dir: every write goes through an os.Root of dir, so a name
// cannot climb out of it and no link is followed out of it, and links
// are created only after every file, so nothing is written through one.
// Where a link points is not checked here: the DAG loader follows links
// only inside the revision. Submodules are skipped.
func writeTree(tree *object.Tree, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	type link struct{ name, target string }
	var links []link
	err = tree.Files().ForEach(func(f *object.File) error {
		if f.Mode == filemode.Submodule {
			return nil
		}
		clean := path.Clean("/" + f.Name)[1:]
		if clean == "" || clean == ".." || strings.HasPrefix(clean, "../") {
			return nil
		}
		if d := path.Dir(clean); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		r, err := f.Reader()
		if err != nil {
			return err
		}
		defer r.Close()
		if f.Mode == filemode.Symlink {
			target, err := io.ReadAll(io.LimitReader(r, 4096))
			if err != nil {
				return err
			}
			links = append(links, link{clean, string(target)})
			return nil
		}
		mode := os.FileMode(0o644)
		if f.Mode == filemode.Executable {
			mode = 0o755
		}
		out, err := root.OpenFile(clean, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, mode)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, r); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		return err
	}
	for _, l := range links {
		if err := root.Symlink(l.target, l.name); err != nil {
			return fmt.Errorf("link %s: %w", l.name, err)
		}
	}
	return nil
}

// cleanup removes all but the newest Keep old revisions, and leftovers of
// interrupted writes.
func (s *Syncer) cleanup(current string) {
	entries, err := os.ReadDir(s.opts.Root)
	if err != nil {
		return
	}
	type old struct {
		name string
		mod  time.Time
	}
	var olds []old
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), ".tmp-"):
			os.RemoveAll(filepath.Join(s.opts.Root, e.Name()))
		case strings.HasPrefix(e.Name(), "rev-") && e.Name() != s.revName(current):
			if info, err := e.Info(); err == nil {
				olds = append(olds, old{e.Name(), info.ModTime()})
			}
		}
	}
	sort.Slice(olds, func(i, j int) bool { return olds[i].mod.After(olds[j].mod) })
	for i, o := range olds {
		if i >= s.opts.Keep {
			os.RemoveAll(filepath.Join(s.opts.Root, o.name))
		}
	}
}

// auth reads the credentials from their files, now.
func (s *Syncer) auth() (transport.AuthMethod, error) {
	a := s.opts.Auth
	switch {
	case a.SSHKeyFile != "":
		user := "git"
		if ep, err := transport.NewEndpoint(s.opts.URL); err == nil && ep.User != "" {
			user = ep.User
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, "")
		if err != nil {
			return nil, fmt.Errorf("ssh key %s: %w", a.SSHKeyFile, err)
		}
		check, err := knownhosts.New(a.KnownHostsFile)
		if err != nil {
			return nil, fmt.Errorf("known_hosts %s: %w", a.KnownHostsFile, err)
		}
		keys.HostKeyCallback = check
		return keys, nil
	case a.PasswordFile != "":
		data, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("git password file: %w", err)
		}
		user := a.Username
		if user == "" {
			user = "git"
		}
		return &githttp.BasicAuth{Username: user, Password: strings.TrimSpace(string(data))}, nil
	}
	return nil, nil
}

// redact drops a password written into a URL.
func redact(url string) string {
	if i := strings.Index(url, "://"); i >= 0 {
		rest := url[i+3:]
		if at := strings.Index(rest, "@"); at >= 0 && strings.Contains(rest[:at], ":") {
			user := rest[:strings.Index(rest, ":")]
			return url[:i+3] + user + ":***" + rest[at:]
		}
	}
	return url
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
