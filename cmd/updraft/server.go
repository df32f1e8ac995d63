package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/builtin"
	kubeexec "updraft/executor/kubernetes"
	"updraft/executor/local"
	"updraft/gitsync"
	"updraft/notify"
	"updraft/scheduler"
	"updraft/store"
	"updraft/store/trylog"
	"updraft/web"
)

// serverConfig is the server's configuration: defaults, then UPDRAFT_*
// environment variables, then flags.
type serverConfig struct {
	DAGs           string
	DB             string
	Addr           string
	Logs           string
	LogCopies      string // auto, on or off
	Executor       string
	Interval       time.Duration
	Parallelism    int
	Slots          int
	Python         string // the interpreter of Python callables (local executor)
	InProcessSlots int
	XComMaxBytes   int
	ReplicaTimeout time.Duration
	Kube           kubeConfig
	Git            gitConfig
	Auth           authConfig
	Alerts         alertsConfig
	// ExposeConfig lets Admins read this configuration (secrets masked)
	// at /api/v2/config, as Airflow's [api] expose_config.
	ExposeConfig bool
}

// alertsConfig configures Mattermost alerts.
type alertsConfig struct {
	WebhookURL, WebhookURLFile string // the URL itself (env only) or a file holding it
	Channel, Username, IconURL string
	PublicURL                  string
	On                         string // optional events: retry,success,recovery,marked
	// Timeout is how long a post may take before its outcome counts as
	// unknown (then it is resent once, marked).
	Timeout time.Duration
}

func (c alertsConfig) sends() (map[string]bool, error) {
	out := map[string]bool{}
	for _, e := range strings.Split(c.On, ",") {
		switch e = strings.TrimSpace(e); e {
		case "":
		case "retry", "success", "recovery", "marked":
			out[e] = true
		default:
			return nil, fmt.Errorf("--alert-on %q: use retry, success, recovery and marked", e)
		}
	}
	return out, nil
}

// authConfig configures users and sessions.
type authConfig struct {
	AdminUser, AdminPassword string // bootstrap admin, created once
	SecureCookies            bool
	SessionTTL               time.Duration
	ProxyHeader, ProxyFrom   string // trusted authenticating proxy
	ProxyRole                string
	// API v2 bearer tokens: their lifetime, and a file of signing keys
	// (one per line, the first signs) instead of the database's.
	TokenTTL     time.Duration
	TokenKeyFile string
}

// options turns the flags into the web server's auth options.
func (c authConfig) options() (web.AuthOptions, error) {
	o := web.AuthOptions{SessionTTL: c.SessionTTL, SecureCookies: c.SecureCookies, ProxyHeader: c.ProxyHeader,
		TokenTTL: c.TokenTTL, TokenKeyFile: c.TokenKeyFile}
	if c.ProxyHeader != "" {
		if c.ProxyFrom == "" {
			return o, errors.New("--auth-proxy-header needs --auth-proxy-from: the addresses of the proxy")
		}
		for _, part := range strings.Split(c.ProxyFrom, ",") {
			part = strings.TrimSpace(part)
			if !strings.Contains(part, "/") {
				if a, err := netip.ParseAddr(part); err == nil {
					part = netip.PrefixFrom(a, a.BitLen()).String()
				}
			}
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return o, fmt.Errorf("--auth-proxy-from %q: %w", part, err)
			}
			o.ProxyFrom = append(o.ProxyFrom, p.Masked())
		}
		role, err := web.ParseRole(c.ProxyRole)
		if err != nil {
			return o, fmt.Errorf("--auth-proxy-role: %w", err)
		}
		o.ProxyRole = role
	}
	return o, nil
}

// gitConfig configures the git sync; DAGs come from the branch when URL
// is set, from the --dags folder otherwise.
type gitConfig struct {
	URL, Branch, Path, Root string
	Keep                    int
	Interval                time.Duration
	Auth                    gitsync.Auth
	Endpoints               web.GitOptions
}

// kubeConfig configures the Kubernetes executor.
type kubeConfig struct {
	Kubeconfig, Context, Namespace, Image string
	QPS                                   float64
	Burst, Pods                           int
	AllNamespaces                         bool
	Requests, Limits, Labels              string // "cpu=50m,memory=100Mi", "team=data"
	PullPolicy, ServiceAccount            string
	// Python callables' pods: their image, and the Execution API's URL
	// as pods reach it.
	PythonImage, ExecutionAPIURL string
}

func (m Main) envOr(key, def string) string {
	if v := m.Env(key); v != "" {
		return v
	}
	return def
}

func (m Main) serverConfig(args []string) (serverConfig, error) {
	cfg := serverConfig{
		DAGs:           m.envOr("UPDRAFT_DAGS", "dags"),
		DB:             m.envOr("UPDRAFT_DB", "sqlite:updraft.db"),
		Addr:           m.envOr("UPDRAFT_ADDR", m.envOr("UPDRAFT_LISTEN", "127.0.0.1:8080")),
		Logs:           m.envOr("UPDRAFT_LOGS", "logs"),
		LogCopies:      m.envOr("UPDRAFT_LOG_COPIES", "auto"),
		Executor:       m.envOr("UPDRAFT_EXECUTOR", "local"),
		Interval:       2 * time.Second,
		ReplicaTimeout: 30 * time.Second,
		Parallelism:    32,
		Slots:          16,
		Kube: kubeConfig{Kubeconfig: m.Env("UPDRAFT_KUBECONFIG"), Context: m.Env("UPDRAFT_KUBE_CONTEXT"),
			Namespace: m.envOr("UPDRAFT_NAMESPACE", "default"), Image: m.envOr("UPDRAFT_POD_IMAGE", "debian:bookworm-slim"),
			QPS: 20, Burst: 40, Pods: 256, PythonImage: m.envOr("UPDRAFT_PYTHON_IMAGE", "python:3.12-slim"),
			ExecutionAPIURL: m.Env("UPDRAFT_EXECUTION_API_URL")},
		Python: m.envOr("UPDRAFT_PYTHON", "python3"),
	}
	cfg.Git = gitConfig{URL: m.Env("UPDRAFT_GIT_URL"), Branch: m.envOr("UPDRAFT_GIT_BRANCH", "master"),
		Path: m.Env("UPDRAFT_GIT_PATH"), Root: m.envOr("UPDRAFT_GIT_ROOT", "git-sync"), Interval: 60 * time.Second, Keep: 10,
		Auth: gitsync.Auth{Username: m.Env("UPDRAFT_GIT_USERNAME"), PasswordFile: m.Env("UPDRAFT_GIT_PASSWORD_FILE"),
			SSHKeyFile: m.Env("UPDRAFT_GIT_SSH_KEY_FILE"), KnownHostsFile: m.Env("UPDRAFT_GIT_KNOWN_HOSTS_FILE")},
		Endpoints: web.GitOptions{TokenFile: m.Env("UPDRAFT_GIT_SYNC_TOKEN_FILE"), WebhookSecretFile: m.Env("UPDRAFT_GIT_WEBHOOK_SECRET_FILE")}}
	cfg.Auth = authConfig{AdminUser: m.Env("UPDRAFT_ADMIN_USER"), AdminPassword: m.Env("UPDRAFT_ADMIN_PASSWORD"),
		SecureCookies: m.Env("UPDRAFT_SECURE_COOKIES") == "true", SessionTTL: 12 * time.Hour,
		ProxyHeader: m.Env("UPDRAFT_AUTH_PROXY_HEADER"), ProxyFrom: m.Env("UPDRAFT_AUTH_PROXY_FROM"), ProxyRole: m.envOr("UPDRAFT_AUTH_PROXY_ROLE", "Viewer"),
		TokenTTL: web.DefaultTokenTTL, TokenKeyFile: m.Env("UPDRAFT_API_TOKEN_KEY_FILE")}
	cfg.ExposeConfig = m.Env("UPDRAFT_API_EXPOSE_CONFIG") == "true"
	cfg.Alerts = alertsConfig{WebhookURL: m.Env("UPDRAFT_MATTERMOST_WEBHOOK_URL"), WebhookURLFile: m.Env("UPDRAFT_MATTERMOST_WEBHOOK_URL_FILE"),
		Channel: m.Env("UPDRAFT_MATTERMOST_CHANNEL"), Username: m.envOr("UPDRAFT_MATTERMOST_USERNAME", "updraft"),
		IconURL: m.Env("UPDRAFT_MATTERMOST_ICON_URL"), PublicURL: m.Env("UPDRAFT_PUBLIC_URL"), On: m.Env("UPDRAFT_ALERT_ON"),
		Timeout: 30 * time.Second}
	for key, dst := range map[string]*time.Duration{"UPDRAFT_DAGS_INTERVAL": &cfg.Interval, "UPDRAFT_GIT_INTERVAL": &cfg.Git.Interval, "UPDRAFT_SESSION_TTL": &cfg.Auth.SessionTTL, "UPDRAFT_REPLICA_TIMEOUT": &cfg.ReplicaTimeout, "UPDRAFT_ALERT_TIMEOUT": &cfg.Alerts.Timeout, "UPDRAFT_API_TOKEN_TTL": &cfg.Auth.TokenTTL} {
		if v := m.Env(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return cfg, fmt.Errorf("%s: %w", key, err)
			}
			*dst = d
		}
	}
	fl := flag.NewFlagSet("server", flag.ContinueOnError)
	fl.SetOutput(m.Stderr)
	fl.StringVar(&cfg.DAGs, "dags", cfg.DAGs, "folder of DAG files (env UPDRAFT_DAGS)")
	fl.StringVar(&cfg.DB, "db", cfg.DB, "metadata database: sqlite:PATH or postgres://user:pass@host/db (env UPDRAFT_DB)")
	fl.StringVar(&cfg.Addr, "addr", cfg.Addr, "address of the web server (env UPDRAFT_ADDR)")
	fl.StringVar(&cfg.Addr, "listen", cfg.Addr, "same as --addr")
	fl.StringVar(&cfg.Logs, "logs", cfg.Logs, "folder for task logs (env UPDRAFT_LOGS)")
	fl.StringVar(&cfg.LogCopies, "log-copies", cfg.LogCopies, "copy try logs into the database so every replica shows them: auto (with PostgreSQL), on or off (env UPDRAFT_LOG_COPIES)")
	fl.StringVar(&cfg.Executor, "executor", cfg.Executor, "executor: local or kubernetes (env UPDRAFT_EXECUTOR)")
	fl.StringVar(&cfg.Kube.Kubeconfig, "kubeconfig", cfg.Kube.Kubeconfig, "kubeconfig file (env UPDRAFT_KUBECONFIG; default: in-cluster)")
	fl.StringVar(&cfg.Kube.Context, "kube-context", cfg.Kube.Context, "kubeconfig context (env UPDRAFT_KUBE_CONTEXT)")
	fl.StringVar(&cfg.Kube.Namespace, "namespace", cfg.Kube.Namespace, "namespace of task pods that name none (env UPDRAFT_NAMESPACE)")
	fl.StringVar(&cfg.Kube.Image, "pod-image", cfg.Kube.Image, "image BashOperator tasks run in (env UPDRAFT_POD_IMAGE)")
	fl.StringVar(&cfg.Kube.PythonImage, "python-image", cfg.Kube.PythonImage, "image Python callables' pods run in, unless a task's executor_config pod_override names one (env UPDRAFT_PYTHON_IMAGE)")
	fl.StringVar(&cfg.Kube.ExecutionAPIURL, "execution-api-url", cfg.Kube.ExecutionAPIURL, "this server's URL as Python callables' pods reach it, e.g. http://updraft.data.svc:8080 (env UPDRAFT_EXECUTION_API_URL)")
	fl.StringVar(&cfg.Python, "python", cfg.Python, "interpreter the local executor runs Python callables with (env UPDRAFT_PYTHON)")
	fl.Float64Var(&cfg.Kube.QPS, "kube-qps", cfg.Kube.QPS, "Kubernetes API requests per second")
	fl.IntVar(&cfg.Kube.Burst, "kube-burst", cfg.Kube.Burst, "Kubernetes API burst")
	fl.IntVar(&cfg.Kube.Pods, "max-pods", cfg.Kube.Pods, "task pods at once")
	fl.BoolVar(&cfg.Kube.AllNamespaces, "all-namespaces", false, "run pods in any namespace a task names (needs a ClusterRole); default: --namespace only")
	fl.StringVar(&cfg.Kube.Requests, "pod-requests", m.Env("UPDRAFT_POD_REQUESTS"), "resource requests of pods that set none, e.g. cpu=50m,memory=100Mi")
	fl.StringVar(&cfg.Kube.Limits, "pod-limits", m.Env("UPDRAFT_POD_LIMITS"), "resource limits of pods that set none, e.g. cpu=500m,memory=500Mi")
	fl.StringVar(&cfg.Kube.Labels, "pod-labels", m.Env("UPDRAFT_POD_LABELS"), "labels of every pod, e.g. team=data")
	fl.StringVar(&cfg.Kube.PullPolicy, "pod-pull-policy", m.Env("UPDRAFT_POD_PULL_POLICY"), "image pull policy of pods that set none")
	fl.StringVar(&cfg.Kube.ServiceAccount, "pod-service-account", m.Env("UPDRAFT_POD_SERVICE_ACCOUNT"), "service account of pods that name none")
	fl.DurationVar(&cfg.Interval, "dags-interval", cfg.Interval, "how often the DAG folder is checked for changes (env UPDRAFT_DAGS_INTERVAL)")
	fl.StringVar(&cfg.Git.URL, "git-url", cfg.Git.URL, "git repository to take DAGs from instead of --dags (env UPDRAFT_GIT_URL)")
	fl.StringVar(&cfg.Git.Branch, "git-branch", cfg.Git.Branch, "branch to follow (env UPDRAFT_GIT_BRANCH)")
	fl.StringVar(&cfg.Git.Path, "git-path", cfg.Git.Path, "folder of the repository holding the DAG files (env UPDRAFT_GIT_PATH)")
	fl.IntVar(&cfg.Git.Keep, "git-keep", cfg.Git.Keep, "older revisions kept on disk: a Python task of a run pinned to one runs its files")
	fl.DurationVar(&cfg.Git.Interval, "git-interval", cfg.Git.Interval, "how often the branch is checked (env UPDRAFT_GIT_INTERVAL)")
	fl.StringVar(&cfg.Git.Root, "git-root", cfg.Git.Root, "private folder the revisions are checked out in (env UPDRAFT_GIT_ROOT)")
	fl.StringVar(&cfg.Git.Auth.Username, "git-username", cfg.Git.Auth.Username, "HTTPS user (env UPDRAFT_GIT_USERNAME)")
	fl.StringVar(&cfg.Git.Auth.PasswordFile, "git-password-file", cfg.Git.Auth.PasswordFile, "file holding the HTTPS password or token, re-read at each sync (env UPDRAFT_GIT_PASSWORD_FILE)")
	fl.StringVar(&cfg.Git.Auth.SSHKeyFile, "git-ssh-key-file", cfg.Git.Auth.SSHKeyFile, "SSH private key file (env UPDRAFT_GIT_SSH_KEY_FILE)")
	fl.StringVar(&cfg.Git.Auth.KnownHostsFile, "git-known-hosts-file", cfg.Git.Auth.KnownHostsFile, "SSH known_hosts file, always checked (env UPDRAFT_GIT_KNOWN_HOSTS_FILE)")
	fl.StringVar(&cfg.Git.Endpoints.TokenFile, "git-sync-token-file", cfg.Git.Endpoints.TokenFile, "file holding the bearer token of POST /api/v1/git/sync (env UPDRAFT_GIT_SYNC_TOKEN_FILE)")
	fl.StringVar(&cfg.Git.Endpoints.WebhookSecretFile, "git-webhook-secret-file", cfg.Git.Endpoints.WebhookSecretFile, "file holding the push webhook secret of POST /api/v1/git/webhook (env UPDRAFT_GIT_WEBHOOK_SECRET_FILE)")
	fl.BoolVar(&cfg.Auth.SecureCookies, "secure-cookies", cfg.Auth.SecureCookies, "mark session cookies Secure on plain HTTP too, when TLS ends at a proxy (env UPDRAFT_SECURE_COOKIES=true)")
	fl.DurationVar(&cfg.Auth.SessionTTL, "session-ttl", cfg.Auth.SessionTTL, "how long a browser login lasts (env UPDRAFT_SESSION_TTL)")
	fl.DurationVar(&cfg.Auth.TokenTTL, "api-token-ttl", cfg.Auth.TokenTTL, "how long a bearer token from POST /auth/token lasts (env UPDRAFT_API_TOKEN_TTL)")
	fl.StringVar(&cfg.Auth.TokenKeyFile, "api-token-key-file", cfg.Auth.TokenKeyFile, "file of the tokens' signing keys, one per line, the first signs; default: keys in the database, shared by replicas (env UPDRAFT_API_TOKEN_KEY_FILE)")
	fl.BoolVar(&cfg.ExposeConfig, "api-expose-config", cfg.ExposeConfig, "let Admins read this configuration, secrets masked, at /api/v2/config (env UPDRAFT_API_EXPOSE_CONFIG=true)")
	fl.StringVar(&cfg.Auth.ProxyHeader, "auth-proxy-header", cfg.Auth.ProxyHeader, "header naming the user, set by an authenticating proxy, e.g. X-Forwarded-User (env UPDRAFT_AUTH_PROXY_HEADER)")
	fl.StringVar(&cfg.Auth.ProxyFrom, "auth-proxy-from", cfg.Auth.ProxyFrom, "addresses or CIDRs the proxy header is trusted from, comma-separated (env UPDRAFT_AUTH_PROXY_FROM)")
	fl.StringVar(&cfg.Auth.ProxyRole, "auth-proxy-role", cfg.Auth.ProxyRole, "role of users first seen through the proxy (env UPDRAFT_AUTH_PROXY_ROLE)")
	fl.StringVar(&cfg.Alerts.WebhookURLFile, "mattermost-webhook-url-file", cfg.Alerts.WebhookURLFile, "file holding the Mattermost incoming webhook URL, re-read at each post (env UPDRAFT_MATTERMOST_WEBHOOK_URL_FILE; or the URL in UPDRAFT_MATTERMOST_WEBHOOK_URL)")
	fl.StringVar(&cfg.Alerts.Channel, "mattermost-channel", cfg.Alerts.Channel, "default channel of alerts; empty: the webhook's own (env UPDRAFT_MATTERMOST_CHANNEL)")
	fl.StringVar(&cfg.Alerts.Username, "mattermost-username", cfg.Alerts.Username, "name alerts are posted as (env UPDRAFT_MATTERMOST_USERNAME)")
	fl.StringVar(&cfg.Alerts.IconURL, "mattermost-icon-url", cfg.Alerts.IconURL, "icon of alerts (env UPDRAFT_MATTERMOST_ICON_URL)")
	fl.StringVar(&cfg.Alerts.PublicURL, "public-url", cfg.Alerts.PublicURL, "the UI's address for links in alerts, e.g. https://updraft.example.com (env UPDRAFT_PUBLIC_URL)")
	fl.DurationVar(&cfg.Alerts.Timeout, "alert-timeout", cfg.Alerts.Timeout, "how long the webhook may take to answer a post before its outcome counts as unknown; such a post is resent once, marked (env UPDRAFT_ALERT_TIMEOUT)")
	fl.StringVar(&cfg.Alerts.On, "alert-on", cfg.Alerts.On, "optional alerts, comma-separated: retry, success, recovery, marked (env UPDRAFT_ALERT_ON)")
	fl.IntVar(&cfg.Parallelism, "parallelism", cfg.Parallelism, "task instances queued or running at once")
	fl.IntVar(&cfg.Slots, "local-slots", cfg.Slots, "processes the local executor runs at once")
	fl.IntVar(&cfg.InProcessSlots, "inprocess-slots", 8, "HTTP, Mattermost and SQL tasks run at once inside the server")
	xcomMax := scheduler.DefaultXComMaxBytes
	if v := m.Env("UPDRAFT_XCOM_MAX_BYTES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return cfg, fmt.Errorf("UPDRAFT_XCOM_MAX_BYTES: %w", err)
		}
		xcomMax = n
	}
	fl.IntVar(&cfg.XComMaxBytes, "xcom-max-bytes", xcomMax, "what one try may push as XCom, all keys together; a try over it fails (env UPDRAFT_XCOM_MAX_BYTES)")
	fl.DurationVar(&cfg.ReplicaTimeout, "replica-timeout", cfg.ReplicaTimeout, "with PostgreSQL: a replica silent this long is taken for dead and its tries are taken over (env UPDRAFT_REPLICA_TIMEOUT)")
	if err := fl.Parse(args); err != nil {
		return cfg, err
	}
	switch {
	case cfg.Interval <= 0 || cfg.Git.Interval <= 0:
		return cfg, errors.New("--dags-interval and --git-interval must be positive")
	case cfg.Executor != "local" && cfg.Executor != "kubernetes":
		return cfg, fmt.Errorf("--executor %q: use local or kubernetes", cfg.Executor)
	case cfg.LogCopies != "auto" && cfg.LogCopies != "on" && cfg.LogCopies != "off":
		return cfg, fmt.Errorf("--log-copies %q: use auto, on or off", cfg.LogCopies)
	case cfg.Parallelism < 1 || cfg.Slots < 1:
		return cfg, errors.New("--parallelism and --local-slots must be at least 1")
	case cfg.XComMaxBytes < 1:
		return cfg, errors.New("--xcom-max-bytes must be at least 1")
	case cfg.Alerts.Timeout <= 0:
		return cfg, errors.New("--alert-timeout must be positive")
	case cfg.Auth.SessionTTL <= 0:
		return cfg, errors.New("--session-ttl must be positive")
	case cfg.Auth.TokenTTL <= 0:
		return cfg, errors.New("--api-token-ttl must be positive")
	case (cfg.Auth.AdminUser == "") != (cfg.Auth.AdminPassword == ""):
		return cfg, errors.New("UPDRAFT_ADMIN_USER and UPDRAFT_ADMIN_PASSWORD go together")
	}
	if _, err := cfg.Auth.options(); err != nil {
		return cfg, err
	}
	if _, err := cfg.Alerts.sends(); err != nil {
		return cfg, err
	}
	if cfg.Alerts.WebhookURL != "" && cfg.Alerts.WebhookURLFile != "" {
		return cfg, errors.New("set the Mattermost webhook URL once: UPDRAFT_MATTERMOST_WEBHOOK_URL or --mattermost-webhook-url-file")
	}
	return cfg, nil
}

// openStore opens and migrates the metadata database.
func openStore(ctx context.Context, dsn string) (*store.Store, error) {
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// server runs the scheduler and the web server until ctx ends, then shuts
// the HTTP server down gracefully. Local tries keep running across a
// restart and are adopted by the next server.
func (m Main) server(ctx context.Context, logger *slog.Logger, args []string) int {
	cfg, err := m.serverConfig(args)
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft server:", err)
		return 2
	}
	var syncer *gitsync.Syncer
	if cfg.Git.URL != "" {
		syncer, err = gitsync.New(gitsync.Options{URL: cfg.Git.URL, Branch: cfg.Git.Branch, Path: cfg.Git.Path,
			Root: cfg.Git.Root, Interval: cfg.Git.Interval, Auth: cfg.Git.Auth, Keep: cfg.Git.Keep, Log: logger})
		if err != nil {
			fmt.Fprintln(m.Stderr, "updraft server:", err)
			return 2
		}
	} else if st, err := os.Stat(cfg.DAGs); err != nil || !st.IsDir() {
		fmt.Fprintf(m.Stderr, "updraft server: DAG folder %s: not a readable folder\n", cfg.DAGs)
		return 2
	}
	st, err := openStore(ctx, cfg.DB)
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft server:", err)
		return 1
	}
	defer st.Close()
	// Every secret the server knows is masked wherever it would be
	// written: logs, rendered fields, reasons, audit and alert texts.
	hideProcess(logger)
	masker := dags.NewMasker()
	secrets := m.serverSecrets(cfg, st)
	if err := secrets.teach(ctx, masker); err != nil {
		fmt.Fprintln(m.Stderr, "updraft server: reading secret values to mask:", err)
		return 1
	}
	st.MaskWith(masker)
	logs, err := filepath.Abs(cfg.Logs)
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft server:", err)
		return 1
	}
	var folder *dags.Folder
	if syncer != nil {
		folder = dags.NewSourceFolder(gitSource(syncer), cfg.Interval, logger)
		syncer.OnPublish(func(gitsync.Revision) { folder.Trigger() })
	} else {
		folder = dags.NewFolder(dags.DirFS(cfg.DAGs), cfg.Interval, logger)
	}
	folder.Refresh()
	metrics := web.NewMetrics()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft server:", err)
		return 1
	}
	defer ln.Close()
	py, err := newPythonTries(ctx, st, runtimeDir(logs), serverDagsDir(syncer, cfg.DAGs), m.connections(), masker, logger)
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft server:", err)
		return 1
	}
	// On PostgreSQL, several servers may share the database: they take
	// turns at scheduling and take over each other's tries.
	shared := strings.HasPrefix(cfg.DB, "postgres://") || strings.HasPrefix(cfg.DB, "postgresql://")
	var exec executor.Executor
	var runExecutor func(context.Context) error
	switch cfg.Executor {
	case "kubernetes":
		kexec, err := newKubeExecutor(cfg.Kube, shared, logger, metrics.ObservePodStart, py, st)
		if err != nil {
			fmt.Fprintln(m.Stderr, "updraft server:", err)
			return 2
		}
		exec, runExecutor = kexec, kexec.Run
	default:
		lexec := local.New(cfg.Slots, logger)
		lexec.UsePython(py.local(cfg.Python, loopbackURL(ln.Addr())))
		exec = lexec
	}
	// HTTP and Mattermost tasks run in-process beside the main executor.
	// Tasks that trigger other DAGs go through the scheduler, made below.
	starter := &runStarter{st: st}
	router := builtin.NewRouter(exec, builtin.New(builtin.Options{Connections: m.connections(), Slots: cfg.InProcessSlots, External: externalLookup(st), Runs: starter,
		Secrets: st.SecretValues, Log: logger}))
	exec = router
	// Their try logs are copied into the database, so that each replica
	// shows every log without a volume they all mount.
	var copies *trylog.Copier
	if cfg.LogCopies == "on" || cfg.LogCopies == "auto" && shared {
		copies = trylog.NewCopier(st, logger)
	}
	sched := scheduler.New(st, exec, folder, scheduler.Options{Parallelism: cfg.Parallelism, LogDir: logs, Log: logger, ExecutorName: cfg.Executor,
		ObserveStep: metrics.ObserveStep, ObserveTry: metrics.ObserveTry, Shared: shared, ReplicaID: m.Env("UPDRAFT_REPLICA_ID"),
		ReplicaTimeout: cfg.ReplicaTimeout, LogCopies: copies, Mask: masker, XComMaxBytes: cfg.XComMaxBytes})
	starter.sched = sched
	folder.OnLoad(sched.Notify)
	authOpts, _ := cfg.Auth.options()
	if err := bootstrapAdmin(ctx, st, cfg.Auth, logger); err != nil {
		fmt.Fprintln(m.Stderr, "updraft server:", err)
		return 1
	}
	ui := web.New(web.Options{Bag: folder, Store: st, Commands: sched, Log: logger, Auth: authOpts,
		Version: version, Heartbeat: sched.Heartbeat, Metrics: metrics, Connections: connectionsView{m.connections()}, Mask: masker,
		Execution: py.api, APIConfig: cfg.apiConfig()})
	dagsFrom := cfg.DAGs
	if syncer != nil {
		ui.WithGit(syncer, cfg.Git.Endpoints)
		dagsFrom = cfg.Git.URL + "#" + cfg.Git.Branch
	}
	notifier := newNotifier(cfg.Alerts, st, folder, "http://"+ln.Addr().String(), logger, masker)
	ui.WithAlerts(notifier.Enabled())
	srv := &http.Server{Handler: ui, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("updraft server started", "url", "http://"+ln.Addr().String(), "dags", dagsFrom, "db", store.RedactDSN(cfg.DB),
		"executor", cfg.Executor, "version", version)

	g, ctx := errgroup.WithContext(ctx)
	if syncer != nil {
		g.Go(func() error { return syncer.Run(ctx) })
	}
	g.Go(func() error { return folder.Run(ctx) })
	if runExecutor != nil {
		g.Go(func() error { return runExecutor(ctx) })
	}
	g.Go(func() error { return router.Run(ctx) })
	g.Go(func() error { return sched.Run(ctx) })
	g.Go(func() error { return notifier.Run(ctx) })
	g.Go(func() error { secrets.keepTeaching(ctx, masker, 2*time.Second, logger); return nil })
	g.Go(func() error { copies.Run(ctx); return nil })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	})
	if err := g.Wait(); err != nil {
		logger.Error("server stopped", "err", err)
		return 1
	}
	logger.Info("updraft server stopped")
	return 0
}

// connections finds Airflow connections: UPDRAFT_CONN_<ID> (or
// AIRFLOW_CONN_<ID>) and files in UPDRAFT_CONNECTIONS_DIR.
func (m Main) connections() builtin.Connections {
	environ := m.Environ
	if environ == nil {
		environ = func() []string { return nil }
	}
	return builtin.Connections{Dir: m.Env("UPDRAFT_CONNECTIONS_DIR"), Getenv: m.Env, Environ: environ}
}

// newNotifier builds the alert deliverer. Without a webhook it still runs:
// it marks events as not sent, so the outbox does not grow.
func newNotifier(c alertsConfig, st *store.Store, bag notify.Bag, localURL string, logger *slog.Logger, masker *dags.Masker) *notify.Notifier {
	sends, _ := c.sends()
	o := notify.Options{Store: st, Bag: bag, Channel: strings.TrimPrefix(c.Channel, "#"), Username: c.Username, IconURL: c.IconURL,
		PublicURL: c.PublicURL, Send: sends, Log: logger, Mask: masker, Timeout: c.Timeout}
	if o.PublicURL == "" {
		o.PublicURL = localURL
	}
	switch {
	case c.WebhookURLFile != "":
		o.WebhookURL = notify.WebhookFromFile(c.WebhookURLFile)
	case c.WebhookURL != "":
		url := c.WebhookURL
		o.WebhookURL = func() (string, error) { return url, nil }
	default:
		logger.Info("no Mattermost webhook configured: alerts are recorded but not sent")
	}
	return notify.New(o)
}

// bootstrapAdmin creates the admin named by UPDRAFT_ADMIN_USER on first
// start, and warns when nobody could log in.
func bootstrapAdmin(ctx context.Context, st *store.Store, c authConfig, logger *slog.Logger) error {
	if c.AdminUser != "" {
		created, err := web.EnsureAdmin(ctx, st, c.AdminUser, c.AdminPassword, time.Now())
		if err != nil {
			return fmt.Errorf("bootstrap admin %q: %w", c.AdminUser, err)
		}
		if created {
			logger.Info("bootstrap admin created", "user", c.AdminUser)
		}
	}
	users, err := st.Users(ctx)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		logger.Warn("no users yet: nobody can log in; create one with `updraft users create` or set UPDRAFT_ADMIN_USER and UPDRAFT_ADMIN_PASSWORD")
	}
	return nil
}

// newKubeExecutor connects to the cluster (a kubeconfig file and context,
// or the in-cluster service account) and returns the pod executor.
func newKubeExecutor(c kubeConfig, shared bool, logger *slog.Logger, observePodStart func(time.Duration), py *pythonTries, st *store.Store) (*kubeexec.Executor, error) {
	var rc *rest.Config
	var err error
	if c.Kubeconfig == "" {
		rc, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("--executor kubernetes: not in a cluster, and no --kubeconfig: %w", err)
		}
	} else {
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig},
			&clientcmd.ConfigOverrides{CurrentContext: c.Context}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", c.Kubeconfig, err)
		}
	}
	rc.QPS, rc.Burst = float32(c.QPS), c.Burst
	client, err := kubeexec.NewClient(rc)
	if err != nil {
		return nil, err
	}
	defaults, err := c.podDefaults()
	if err != nil {
		return nil, err
	}
	if c.ExecutionAPIURL != "" {
		defaults.Python = py.pods(c.PythonImage, strings.TrimRight(c.ExecutionAPIURL, "/"))
	}
	// Alone, a server knows every live try: a pod no try needs is swept
	// at once. Beside replicas, young pods are spared (one may belong to
	// a try another replica started after the sweep read the live tries).
	grace := time.Nanosecond
	if shared {
		grace = time.Minute
	}
	return kubeexec.New(kubeexec.Options{Client: client, Log: logger, Slots: c.Pods, AllNamespaces: c.AllNamespaces, ObservePodStart: observePodStart,
		Defaults: defaults, SweepGrace: grace, Results: py.results(st)}), nil
}

// podDefaults parses the server-wide pod settings.
func (c kubeConfig) podDefaults() (kubeexec.Defaults, error) {
	d := kubeexec.Defaults{Namespace: c.Namespace, Image: c.Image, ServiceAccount: c.ServiceAccount}
	switch corev1.PullPolicy(c.PullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		d.ImagePullPolicy = corev1.PullPolicy(c.PullPolicy)
	default:
		return d, fmt.Errorf("--pod-pull-policy must be Always, IfNotPresent or Never, got %q", c.PullPolicy)
	}
	pairs := func(flag, s string) (map[string]string, error) {
		out := map[string]string{}
		for _, kv := range strings.Split(s, ",") {
			if kv = strings.TrimSpace(kv); kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("%s: expected key=value, got %q", flag, kv)
			}
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		return out, nil
	}
	var err error
	if d.Labels, err = pairs("--pod-labels", c.Labels); err != nil {
		return d, err
	}
	for k, v := range d.Labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return d, fmt.Errorf("--pod-labels: %q: %s", k, errs[0])
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return d, fmt.Errorf("--pod-labels: %q: %s", v, errs[0])
		}
	}
	for flag, src := range map[string]string{"--pod-requests": c.Requests, "--pod-limits": c.Limits} {
		kv, err := pairs(flag, src)
		if err != nil {
			return d, err
		}
		list := corev1.ResourceList{}
		for k, v := range kv {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return d, fmt.Errorf("%s: %s=%q is not a resource quantity (use forms such as 500m, 128Mi)", flag, k, v)
			}
			list[corev1.ResourceName(k)] = q
		}
		if len(list) > 0 && flag == "--pod-requests" {
			d.Resources.Requests = list
		} else if len(list) > 0 {
			d.Resources.Limits = list
		}
	}
	return d, nil
}

// gitSource loads the published revision: its folder never changes once
// published, so a load sees exactly one commit.
func gitSource(sy *gitsync.Syncer) dags.Source {
	return func() (fs.FS, string, error) {
		rev, ok := sy.Current()
		if !ok {
			return nil, "", errors.New("no git revision synced yet")
		}
		return dags.DirFS(rev.Dir), rev.Hash, nil
	}
}

// serverDagsDir resolves a run's revision to its DAG folder: the
// published folder of that git revision, or the DAG folder itself when
// DAGs are not from git.
func serverDagsDir(syncer *gitsync.Syncer, dagsFolder string) func(string) (string, error) {
	if syncer == nil {
		return func(string) (string, error) { return filepath.Abs(dagsFolder) }
	}
	return func(rev string) (string, error) {
		if rev == "" {
			cur, ok := syncer.Current()
			if !ok {
				return "", errors.New("no revision is published yet")
			}
			return cur.Dir, nil
		}
		return syncer.RevisionDir(rev)
	}
}
