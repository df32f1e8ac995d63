# updraft: `make run` starts the server on its embedded defaults,
# `make test` installs what the tests need and runs every test.

GO        ?= go
BIN       := bin/updraft
PKGS      := ./...
# dag-factory's own DAG files, held to their expected outcomes by
# dags/corpus_test.go. They are not ours, so they are read in place.
CORPUS    ?= $(abspath ../shared/corpus/dag-factory)
# Fuzzing budgets are counts of inputs, not durations: Go 1.26's fuzz
# coordinator can fail a target with a bare "context deadline exceeded" at
# the end of a -fuzztime duration on a loaded machine, having found
# nothing (go.dev/issue/75804, fixed in Go 1.27). A count has no deadline
# to race. Minimising a new input is bounded the same way.
FUZZTIME  ?= 10000x
FUZZMIN   ?= 500x
# minicore_disabled: the Snowflake driver otherwise embeds a native
# telemetry library that every process (even "updraft version") writes to a
# temporary file and dlopens at start; without it the binary is static.
export GOFLAGS := -buildvcs=false -tags=minicore_disabled

.PHONY: all build run test lint bench bench-check bench-cli fuzz deps clean dev-cluster generate

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$$(git describe --always --dirty 2>/dev/null || echo dev)" -o $(BIN) ./cmd/updraft

# run serves the examples; the first run makes an admin whose password is
# in .run/admin-password (generated, never printed by the server).
run:
	@echo "updraft: building $(BIN) (the first build downloads the Go modules and compiles them: a few minutes; later ones take seconds)..."
	@$(MAKE) --no-print-directory build
	@mkdir -p .run
	@test -s .run/admin-password || (umask 077; head -c 15 /dev/urandom | base64 | tr -d '/+=' > .run/admin-password)
	@echo "updraft: starting on the example DAGs (dags/examples), SQLite in .run/updraft.db, the local executor"
	@echo "updraft: open http://127.0.0.1:8080 and log in as admin with the password in .run/admin-password (cat .run/admin-password)"
	UPDRAFT_ADMIN_USER=admin UPDRAFT_ADMIN_PASSWORD="$$(cat .run/admin-password)" \
		./$(BIN) server --dags dags/examples --db sqlite:.run/updraft.db --logs .run/logs --addr 127.0.0.1:8080

# deps installs what the tests need: git and OpenSSH (git daemon,
# git-http-backend and a throwaway sshd serve the git sync tests'
# repositories), Chromium, PostgreSQL and Python 3 (the Python callables'
# tests run real callables) from Debian when missing, and the
# test Kubernetes control plane (kube-apiserver, kube-scheduler, etcd, kwok)
# built from the Go module proxy into .tools/bin, once (several minutes the
# first time).
APT_PKGS := git openssh-server openssh-client chromium postgresql python3
deps:
	@$(GO) version
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends $$missing; \
	fi
	bash executor/kubernetes/cluster/build-tools.sh $(CURDIR)/.tools/bin

# Test artifacts (the browser test's screenshots) land in .artifacts/.
test: deps lint
	@mkdir -p .artifacts
	UPDRAFT_DAG_FACTORY_CORPUS=$(CORPUS) UPDRAFT_TOOLS_BIN=$(CURDIR)/.tools/bin $(GO) test -race -count=1 -artifacts -outputdir $(CURDIR)/.artifacts $(PKGS)
	$(MAKE) fuzz
	$(MAKE) bench-check

# Every benchmark once, at the smallest benchtime: a broken benchmark
# fails the build (the figures come from "make bench").
bench-check:
	UPDRAFT_DAG_FACTORY_CORPUS=$(CORPUS) UPDRAFT_TOOLS_BIN=$(CURDIR)/.tools/bin $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 $(PKGS)

# Short fuzzing runs on top of the checked-in seeds (dags/testdata/fuzz).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./dags
	$(GO) test -run '^$$' -fuzz '^FuzzCron$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./dags
	$(GO) test -run '^$$' -fuzz '^FuzzTemplate$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./dags

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# generate rebuilds the generated code: the REST API v2 client the tests
# drive the server with (from ../shared/reference/airflow-api/v2.yaml, by
# oapi-codegen), and the operations table of docs/rest-api-v2.md.
generate:
	$(GO) generate ./web/apiv2/...
	UPDRAFT_UPDATE_DOCS=1 $(GO) test -count=1 -run TestOperations ./web/apiv2

# A local Kubernetes control plane (the tests' one) to try
# "updraft server --executor kubernetes" on; see the README.
dev-cluster: deps build
	$(GO) run ./executor/kubernetes/cluster/devcluster

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./dags
	$(GO) test -run '^$$' -bench 'Throughput|HandoffLatency' -benchtime 1x -count 3 ./scheduler
	$(GO) test -run '^$$' -bench 'ReplicasPostgres' -benchtime 1x -count 2 ./scheduler
	$(GO) test -run '^$$' -bench ServerRSS -benchtime 1x -count 2 ./cmd/updraft
	$(GO) test -run '^$$' -bench TriggerWhileRunning -benchtime 1x -count 3 ./cmd/updraft
	$(GO) test -run '^$$' -bench Try -count 5 ./executor/local
	UPDRAFT_TOOLS_BIN=$(CURDIR)/.tools/bin $(GO) test -run '^$$' -bench 'PodCreation|PodHandoff|PodFanOut200' -benchtime 1x -count 2 ./executor/kubernetes
	$(GO) test -run '^$$' -bench PushToSchedulable -benchtime 50x -count 3 ./cmd/updraft
	$(GO) test -run '^$$' -bench Sync1000Files -benchtime 10x -count 3 ./gitsync
	$(GO) test -run '^$$' -bench RSSAfterSyncs -benchtime 1000x -count 1 ./gitsync
	$(GO) test -run '^$$' -bench 'GridPage|DAGList' -benchtime 20x -count 3 ./web
	$(GO) test -run '^$$' -bench APIUnderLoad -benchtime 2000x -count 3 ./web
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./store/trylog
	$(MAKE) bench-cli

# Whole-process timings of the command line (farm-bench, from the
# workplace's tool library), on the shipped binary.
BENCH_DAGS := cmd/updraft/testdata/bench
bench-cli: build
	@mkdir -p .run/bench && install -m 755 $(BIN) .run/bench/updraft
	farm-bench -n 20 -- .run/bench/updraft version
	farm-bench -n 10 -- .run/bench/updraft dags test --dags $(BENCH_DAGS)/one one 2024-01-01
	farm-bench -n 10 -- .run/bench/updraft dags test --dags $(BENCH_DAGS)/chain chain 2024-01-01
	farm-bench -n 5 --timeout 300 -- .run/bench/updraft dags test --parallelism 1000 --dags $(BENCH_DAGS)/par par 2024-01-01

clean:
	rm -rf bin .tools .cache
