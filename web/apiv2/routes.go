package apiv2

import (
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"updraft/scheduler"
)

// route is one operation of the document: served by h, or answered 501
// with why updraft does not have it.
type route struct {
	method, path string
	access       Access
	h            handler
	why          string
}

// Why an operation is not served; the README's table says the same.
const (
	noAssets      = "updraft has no assets (datasets) yet"
	noHITL        = "updraft has no human-in-the-loop operators"
	connsReadOnly = "connections come from the environment or a mounted Secret folder; change them there"
	noXComWrites  = "XComs are written by tasks only"
	noFavorites   = "updraft has no per-user favourite DAGs"
)

func (a *api) table() []route {
	const (
		dag  = "/dags/{dag_id}"
		run  = dag + "/dagRuns/{dag_run_id}"
		ti   = run + "/taskInstances/{task_id}"
		tiMI = ti + "/{map_index}"
	)
	R := func(method, path string, access Access, h handler) route {
		return route{method: method, path: path, access: access, h: h}
	}
	No := func(method, path, why string) route { return route{method: method, path: path, why: why} }
	return []route{
		R("GET", "/dags", Read, a.listDAGs),
		R("PATCH", "/dags", Act, a.patchDAGs),
		R("GET", dag, Read, a.getDAG),
		R("PATCH", dag, Act, a.patchDAG),
		No("DELETE", dag, "a DAG leaves updraft when its file leaves the DAG folder or the branch; its runs stay as history"),
		R("GET", dag+"/details", Read, a.getDAGDetails),
		R("GET", dag+"/tasks", Read, a.listTasks),
		R("GET", dag+"/tasks/{task_id}", Read, a.getTask),
		R("GET", "/dagSources/{dag_id}", Read, a.getDAGSource),
		R("GET", "/dagStats", Read, a.dagStats),
		R("GET", "/dagTags", Read, a.dagTags),
		R("GET", "/dagWarnings", Read, a.dagWarnings),
		R("GET", dag+"/dagVersions", Read, a.listDAGVersions),
		R("GET", dag+"/dagVersions/{version_number}", Read, a.getDAGVersion),
		No("POST", dag+"/favorite", noFavorites),
		No("POST", dag+"/unfavorite", noFavorites),
		No("PUT", "/parseDagFile/{file_token}", "the DAG folder is read again on every sync; POST /api/v1/git/sync forces one"),

		R("GET", dag+"/dagRuns", Read, a.listRuns),
		R("POST", dag+"/dagRuns", Act, a.trigger),
		R("POST", dag+"/dagRuns/list", Read, a.listRunsBatch),
		R("GET", run, Read, a.getRun),
		R("PATCH", run, Act, a.patchRun),
		R("DELETE", run, Act, a.deleteRun),
		R("POST", run+"/clear", Act, a.clearRun),
		R("GET", run+"/wait", Read, a.waitRun),
		No("GET", run+"/upstreamAssetEvents", noAssets),

		R("GET", run+"/taskInstances", Read, a.listTIs),
		No("PATCH", run+"/taskInstances", "change task instances one at a time, or clear them with clearTaskInstances"),
		R("POST", run+"/taskInstances/list", Read, a.listTIsBatch),
		R("POST", dag+"/clearTaskInstances", Act, a.clearTIs),
		R("GET", ti, Read, a.getTI),
		R("PATCH", ti, Act, a.patchTI(false)),
		No("DELETE", ti, "a task instance is part of its run's history; delete the run, or clear the task"),
		R("PATCH", ti+"/dry_run", Read, a.patchTI(true)),
		R("GET", ti+"/dependencies", Read, a.dependencies),
		R("GET", ti+"/listMapped", Read, a.listMapped),
		R("GET", ti+"/tries", Read, a.listTries),
		R("GET", ti+"/tries/{task_try_number}", Read, a.getTry),
		R("GET", ti+"/logs/{try_number}", Read, a.getLog),
		No("GET", ti+"/externalLogUrl/{try_number}", "updraft serves its logs itself; read them from logs/{try_number}"),
		R("GET", ti+"/links", Read, a.extraLinks),
		R("GET", tiMI, Read, a.getTI),
		R("PATCH", tiMI, Act, a.patchTI(false)),
		R("PATCH", tiMI+"/dry_run", Read, a.patchTI(true)),
		R("GET", tiMI+"/dependencies", Read, a.dependencies),
		R("GET", tiMI+"/tries", Read, a.listTries),
		R("GET", tiMI+"/tries/{task_try_number}", Read, a.getTry),
		R("GET", ti+"/xcomEntries", Read, a.listXComs),
		R("GET", ti+"/xcomEntries/{xcom_key}", Read, a.getXCom),
		No("POST", ti+"/xcomEntries", noXComWrites),
		No("PATCH", ti+"/xcomEntries/{xcom_key}", noXComWrites),
		No("DELETE", ti+"/xcomEntries/{xcom_key}", noXComWrites),
		No("GET", run+"/hitlDetails", noHITL),
		No("GET", tiMI+"/hitlDetails", noHITL),
		No("PATCH", tiMI+"/hitlDetails", noHITL),
		No("GET", tiMI+"/hitlDetails/tries/{try_number}", noHITL),

		R("GET", "/variables", Admin, a.listVariables),
		R("POST", "/variables", Admin, a.postVariable),
		R("PATCH", "/variables", Admin, a.bulkVariables),
		R("GET", "/variables/{variable_key}", Admin, a.getVariable),
		R("PATCH", "/variables/{variable_key}", Admin, a.patchVariable),
		R("DELETE", "/variables/{variable_key}", Admin, a.deleteVariable),
		R("GET", "/pools", Read, a.listPools),
		R("POST", "/pools", Op, a.postPool),
		R("PATCH", "/pools", Op, a.bulkPools),
		R("GET", "/pools/{pool_name}", Read, a.getPool),
		R("PATCH", "/pools/{pool_name}", Op, a.patchPool),
		R("DELETE", "/pools/{pool_name}", Op, a.deletePool),
		R("GET", "/connections", Op, a.listConnections),
		R("GET", "/connections/{connection_id}", Op, a.getConnection),
		R("POST", "/connections/test", Op, a.testConnection),
		No("POST", "/connections", connsReadOnly),
		No("PATCH", "/connections", connsReadOnly),
		No("PATCH", "/connections/{connection_id}", connsReadOnly),
		No("DELETE", "/connections/{connection_id}", connsReadOnly),
		No("POST", "/connections/defaults", connsReadOnly),

		R("GET", "/importErrors", Read, a.listImportErrors),
		R("GET", "/importErrors/{import_error_id}", Read, a.getImportError),
		R("GET", "/eventLogs", Read, a.listEventLogs),
		R("GET", "/eventLogs/{event_log_id}", Read, a.getEventLog),
		R("GET", "/monitor/health", Public, a.health),
		R("GET", "/version", Public, a.version),
		R("GET", "/config", Admin, a.getConfig),
		R("GET", "/config/section/{section}/option/{option}", Admin, a.getConfigValue),
		R("GET", "/jobs", Read, a.listJobs),
		R("GET", "/plugins", Read, empty("plugins")),
		R("GET", "/plugins/importErrors", Read, empty("import_errors")),
		R("GET", "/providers", Read, empty("providers")),
		R("GET", "/auth/login", Public, a.login),
		No("GET", "/auth/logout", "sign out from the web UI's menu; an API token lasts until it expires"),

		No("GET", "/assets", noAssets),
		No("GET", "/assets/aliases", noAssets),
		No("GET", "/assets/aliases/{asset_alias_id}", noAssets),
		No("GET", "/assets/events", noAssets),
		No("POST", "/assets/events", noAssets),
		No("GET", "/assets/{asset_id}", noAssets),
		No("POST", "/assets/{asset_id}/materialize", noAssets),
		No("GET", "/assets/{asset_id}/queuedEvents", noAssets),
		No("DELETE", "/assets/{asset_id}/queuedEvents", noAssets),
		No("GET", dag+"/assets/queuedEvents", noAssets),
		No("DELETE", dag+"/assets/queuedEvents", noAssets),
		No("GET", dag+"/assets/{asset_id}/queuedEvents", noAssets),
		No("DELETE", dag+"/assets/{asset_id}/queuedEvents", noAssets),
		R("GET", "/backfills", Read, a.listBackfills),
		R("POST", "/backfills", Act, a.createBackfill(false)),
		R("POST", "/backfills/dry_run", Read, a.createBackfill(true)),
		R("GET", "/backfills/{backfill_id}", Read, a.getBackfill),
		R("PUT", "/backfills/{backfill_id}/cancel", Act, a.changeBackfill(scheduler.BackfillCancel)),
		R("PUT", "/backfills/{backfill_id}/pause", Act, a.changeBackfill(scheduler.BackfillPause)),
		R("PUT", "/backfills/{backfill_id}/unpause", Act, a.changeBackfill(scheduler.BackfillUnpause)),
	}
}

func (a *api) routes(r chi.Router) {
	for _, rt := range a.table() {
		var h http.HandlerFunc
		switch {
		case rt.why != "":
			why := rt.why
			h = a.with(Read, func(w http.ResponseWriter, r *http.Request, c call) error {
				return fmt.Errorf("%s %s: %s: %w", r.Method, r.URL.Path, why, errUnsupported)
			})
		case rt.access == Public:
			h = a.public(rt.h)
		default:
			h = a.with(rt.access, rt.h)
		}
		r.Method(rt.method, rt.path, h)
	}
}

// Operation is one operation of the API as updraft serves it.
type Operation struct {
	Method, Path string // the path under /api/v2, with {parameters}
	Implemented  bool
	Access       string // who may call it: "public", "Viewer", "User", "Op", "Admin"
	Why          string // why it is not implemented
}

// Operations lists every operation of Airflow 3's document the API knows,
// served or not.
func Operations() []Operation {
	a := &api{}
	var out []Operation
	for _, rt := range a.table() {
		op := Operation{Method: rt.method, Path: rt.path, Implemented: rt.why == "", Why: rt.why}
		if op.Implemented {
			op.Access = rt.access.String()
		}
		out = append(out, op)
	}
	return out
}

func (x Access) String() string {
	switch x {
	case Public:
		return "public"
	case Read:
		return "Viewer"
	case Act:
		return "User"
	case Op:
		return "Op"
	}
	return "Admin"
}
