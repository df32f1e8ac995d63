"""updraft's runner for one try of a Python callable.

Started as ``python3 -u updraft_runner.py`` with the environment below; it
imports the callable from the DAG folder, calls it with Airflow's context,
and reports the outcome as a result JSON (a file, or a POST to the server).

Environment:
  UPDRAFT_TRY_INPUT_FILE / UPDRAFT_TRY_INPUT  the input JSON (a path / the text)
  UPDRAFT_DAGS_DIR                             the DAG folder (absolute)
  UPDRAFT_RESULT_FILE                          where the result goes; unset: POST it
  UPDRAFT_API_URL, UPDRAFT_TRY_TOKEN           the Execution API and the try's credential

Exit codes: 0 success or skipped, 1 failed, 2 the result could not be
written, 3 the server refused the POSTed result.

Python 3.8+, standard library only. The stand-in for Airflow's API (shim/)
reaches this runner through the module registered as ``_updraft_runtime``.
"""

import datetime as _dt
import importlib
import importlib.util
import inspect
import json
import logging
import os
import re
import signal
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

# The runtime folder is content-hashed and the DAG folder is a checkout:
# write no __pycache__ into either.
sys.dont_write_bytecode = True

_HERE = os.path.dirname(os.path.abspath(__file__))
_TOKEN = ""  # the try's credential; never printed, never left in os.environ
_API_URL = ""
_TIMEOUT = 30
_REASON_MAX = 500
_REPR_MAX = 2000
_XCOM_REF = "__updraft_xcom__"
_RETURN_KEY = "return_value"
_MODES = ("python", "branch", "short_circuit", "sensor")

# Set while the callable runs; get_current_context() returns it.
_current_context = None


# ---------------------------------------------------------------- outcomes


class TaskError(Exception):
    """A failure whose message is the try's reason as is (no class name)."""

    def __init__(self, reason, final=False):
        Exception.__init__(self, reason)
        self.reason = reason
        self.final = final


class TaskTerminated(Exception):
    """Raised in the main thread when the process gets SIGTERM."""


class APIError(RuntimeError):
    """The Execution API answered with an HTTP error status."""

    def __init__(self, msg, status):
        RuntimeError.__init__(self, msg)
        self.status = status


class CredentialRefused(APIError):
    """The server answered 401/403: the try's token is no longer valid."""


def _has_class(exc, name):
    """Whether a class called name is in exc's MRO (shim or real Airflow)."""
    return any(c.__name__ == name for c in type(exc).__mro__)


def _log(msg):
    print(msg, flush=True)


def _err(msg):
    print(msg, file=sys.stderr, flush=True)


def _cut(s, n):
    return s if len(s) <= n else s[: n - 3] + "..."


# ------------------------------------------------------------ Execution API


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would carry the bearer token elsewhere: refuse it.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


# Direct to the server: no proxy from the environment, no redirects.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _quote(s):
    return urllib.parse.quote(str(s), safe="")


def api_call(method, path, body=None):
    """Calls the Execution API; returns the decoded JSON answer, or None on 404.

    Raises CredentialRefused on 401/403, APIError on other error statuses
    and RuntimeError when the server cannot be reached.
    """
    if not _API_URL:
        raise RuntimeError("UPDRAFT_API_URL is not set: this try cannot reach updraft's server")
    data = None
    headers = {"Authorization": "Bearer " + _TOKEN, "Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(_API_URL + path, data=data, headers=headers, method=method)
    try:
        with _opener.open(req, timeout=_TIMEOUT) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        if e.code == 404 and method == "GET":
            return None
        detail = _error_detail(e)
        if e.code in (401, 403):
            raise CredentialRefused(
                "the server refused the try's credential (%d): the try has ended or its token is not valid%s"
                % (e.code, (" (the server said: %s)" % detail) if detail else ""),
                e.code,
            ) from None
        raise APIError(
            "the server's Execution API answered %d to %s %s%s"
            % (e.code, method, path.split("?")[0], (": " + detail) if detail else ""),
            e.code,
        ) from None
    except urllib.error.URLError as e:
        raise RuntimeError("cannot reach updraft's Execution API at %s: %s" % (_API_URL, e.reason)) from None
    if not raw.strip():
        return {}
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        raise RuntimeError("the server's Execution API answered %s %s with no JSON" % (method, path.split("?")[0])) from None


def _error_detail(e):
    """An error answer's text: a problem JSON's detail, else the body (cut)."""
    try:
        body = e.read().decode("utf-8", "replace").strip()
    except Exception:
        return ""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("detail"), str):
        return _cut(doc["detail"], 300)
    return _cut(body, 300)


def get_variable(key):
    """The Variable's value (a string), or None when it does not exist."""
    ans = api_call("GET", "/execution/variables/" + _quote(key))
    if ans is None:
        return None
    return ans.get("value")


def get_connection(conn_id):
    """The connection's fields as a dict, or None when it does not exist."""
    return api_call("GET", "/execution/connections/" + _quote(conn_id))


_MISSING = object()


def get_xcom(dag_id, run_id, task_id, key, map_index=None, include_prior_dates=False):
    """An XCom's value, or _MISSING. map_index None asks for "any": a mapped
    task's answer is the list of all its map indexes' values."""
    path = "/execution/xcoms/%s/%s/%s/%s" % (_quote(dag_id), _quote(run_id), _quote(task_id), _quote(key))
    q = {}
    if map_index is not None:
        q["map_index"] = str(int(map_index))
    if include_prior_dates:
        q["include_prior_dates"] = "true"
    if q:
        path += "?" + urllib.parse.urlencode(q)
    ans = api_call("GET", path)
    if ans is None:
        return _MISSING
    return ans.get("value")


def current_context():
    """The running try's context; RuntimeError outside a task."""
    if _current_context is None:
        raise RuntimeError(
            "Current context was requested but no context was found! Are you running within an Airflow task?"
        )
    return _current_context


# ----------------------------------------------------------------- JSON


def _json_default(o):
    # Lenient for dates only; anything else is not JSON.
    if isinstance(o, (_dt.datetime, _dt.date, _dt.time)):
        return o.isoformat()
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)


def to_json_value(value):
    """value as plain JSON data (tuples become lists, dates ISO strings).

    Raises TypeError or ValueError when it is not JSON-serialisable."""
    return json.loads(json.dumps(value, default=_json_default, allow_nan=False))


# ------------------------------------------------------------- datetimes

_FRACTION = re.compile(r"\.(\d+)")


def parse_datetime(s):
    """An RFC 3339 string as an aware UTC datetime (None stays None)."""
    if s is None or isinstance(s, _dt.datetime):
        return s
    t = str(s).strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    # 3.8-3.10's fromisoformat takes only 3 or 6 fraction digits.
    t = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], t, count=1)
    d = _dt.datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.astimezone(_dt.timezone.utc)


_DATETIME_KEYS = (
    "logical_date",
    "execution_date",
    "data_interval_start",
    "data_interval_end",
    "prev_data_interval_start_success",
    "prev_data_interval_end_success",
    "prev_start_date_success",
    "prev_end_date_success",
    "prev_execution_date",
    "next_execution_date",
    "prev_execution_date_success",
)


# ------------------------------------------------------- the context objects


class _Accessor(object):
    """var.value / var.json: attribute or get() access to Variables."""

    def __init__(self, deserialize):
        self._deserialize = deserialize

    def get(self, name, default=None, default_var=_MISSING):
        if default_var is not _MISSING:
            default = default_var
        v = get_variable(name)
        if v is None:
            return default
        return json.loads(v) if self._deserialize else v

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        v = get_variable(name)
        if v is None:
            raise KeyError("Variable %s does not exist" % name)
        return json.loads(v) if self._deserialize else v


class VariableAccessor(object):
    """The context's ``var``."""

    def __init__(self):
        self.value = _Accessor(False)
        self.json = _Accessor(True)


class ConnectionAccessor(object):
    """The context's ``conn``: conn.<id> / conn.get(id) as the shim's Connection."""

    def _fetch(self, conn_id):
        from airflow.hooks.base import BaseHook  # the shim or a real Airflow

        return BaseHook.get_connection(conn_id)

    def get(self, conn_id, default=None):
        try:
            return self._fetch(conn_id)
        except Exception as e:
            if _has_class(e, "AirflowNotFoundException"):
                return default
            raise

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._fetch(name)


class Macros(object):
    """The context's ``macros`` (the parts updraft offers)."""

    datetime = _dt.datetime
    timedelta = _dt.timedelta
    json = json
    time = time

    @staticmethod
    def ds_add(ds, days):
        if not days:
            return str(ds)
        d = _dt.datetime.strptime(str(ds), "%Y-%m-%d") + _dt.timedelta(days=days)
        return d.strftime("%Y-%m-%d")

    @staticmethod
    def ds_format(ds, input_format, output_format):
        return _dt.datetime.strptime(str(ds), input_format).strftime(output_format)


class _Plain(object):
    """An object holding the attributes it is given."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)

    def __repr__(self):
        keys = ("dag_id", "task_id", "run_id", "map_index")
        shown = ", ".join("%s=%r" % (k, self.__dict__[k]) for k in keys if k in self.__dict__)
        return "<%s %s>" % (type(self).__name__, shown)


class DAG(_Plain):
    pass


class Task(_Plain):
    pass


class DagRun(_Plain):
    pass


class TaskInstance(object):
    """The context's ``ti``: the try's identity and its XComs."""

    def __init__(self, dag_id, task_id, run_id, try_number, map_index, task=None, dag_run=None):
        self.dag_id = dag_id
        self.task_id = task_id
        self.run_id = run_id
        self.try_number = try_number
        self.map_index = map_index
        self.task = task
        self.dag_run = dag_run
        self.state = "running"
        self.log = logging.getLogger("airflow.task")
        self.pushed = {}  # key -> JSON value, in push order

    def __repr__(self):
        return "<TaskInstance: %s.%s %s map_index=%s [running]>" % (self.dag_id, self.task_id, self.run_id, self.map_index)

    def xcom_push(self, key, value, execution_date=None):
        """Remembers value (JSON-serialisable, else TypeError) for the result."""
        if not isinstance(key, str) or not key:
            raise TypeError("xcom_push needs a non-empty string key, got %r" % (key,))
        try:
            self.pushed[key] = to_json_value(value)
        except (TypeError, ValueError) as e:
            raise TypeError("the XCom %s is not JSON-serialisable: %s" % (key, e)) from None

    def xcom_pull(
        self,
        task_ids=None,
        dag_id=None,
        key=_RETURN_KEY,
        include_prior_dates=False,
        map_indexes=None,
        run_id=None,
        default=None,
    ):
        """Airflow's xcom_pull: one task id (str) and at most one map index
        give one value (default when missing); otherwise a list of the values
        found, task by task and map index by map index."""
        if task_ids is None:
            raise ValueError("xcom_pull needs task_ids")
        if key is None:
            key = _RETURN_KEY
        dag_id = dag_id or self.dag_id
        run_id = run_id or self.run_id
        if isinstance(map_indexes, int) or map_indexes is None:
            indexes, one_index = [map_indexes], True
        else:
            indexes, one_index = list(map_indexes), False
        if isinstance(task_ids, str):
            tasks, one_task = [task_ids], True
        else:
            tasks, one_task = list(task_ids), False

        def pull(tid, mi):
            own = dag_id == self.dag_id and run_id == self.run_id and tid == self.task_id
            if own and key in self.pushed and (mi is None or mi == self.map_index):
                return self.pushed[key]
            return get_xcom(dag_id, run_id, tid, key, mi, include_prior_dates)

        if one_task and one_index:
            v = pull(tasks[0], indexes[0])
            return default if v is _MISSING else v
        out = []
        for tid in tasks:
            for mi in indexes:
                v = pull(tid, mi)
                if v is not _MISSING:
                    out.append(v)
        return out


def build_context(raw, templates_dict):
    """Airflow's context from the server's rendered context (raw)."""
    ctx = dict(raw)
    if "execution_date" not in ctx:
        ctx["execution_date"] = ctx.get("logical_date")
    for k in _DATETIME_KEYS:
        if isinstance(ctx.get(k), str):
            ctx[k] = parse_datetime(ctx[k])
    ctx["conf"] = ctx.get("conf") or {}
    ctx["params"] = ctx.get("params") or {}
    ctx["templates_dict"] = templates_dict
    try_number = ctx.get("try_number")
    ctx["try_number"] = int(try_number) if try_number is not None else 1
    map_index = ctx.get("map_index")
    ctx["map_index"] = int(map_index) if map_index is not None else -1
    dag = DAG(dag_id=ctx.get("dag_id"))
    task = Task(task_id=ctx.get("task_id"), dag_id=ctx.get("dag_id"), dag=dag)
    start = ctx.get("dag_run_start_date")
    dag_run = DagRun(
        dag_id=ctx.get("dag_id"),
        run_id=ctx.get("run_id"),
        conf=ctx["conf"],
        logical_date=ctx.get("logical_date"),
        execution_date=ctx.get("execution_date"),
        data_interval_start=ctx.get("data_interval_start"),
        data_interval_end=ctx.get("data_interval_end"),
        run_type=ctx.get("run_type"),
        external_trigger=bool(ctx.get("external_trigger")),
        start_date=parse_datetime(start) if isinstance(start, str) else start,
        state="running",
    )
    ti = TaskInstance(ctx.get("dag_id"), ctx.get("task_id"), ctx.get("run_id"), ctx["try_number"], ctx["map_index"], task, dag_run)
    ctx.update(
        dag=dag,
        task=task,
        dag_run=dag_run,
        ti=ti,
        task_instance=ti,
        var=VariableAccessor(),
        conn=ConnectionAccessor(),
        macros=Macros(),
        inlets=[],
        outlets=[],
    )
    return ctx


# ------------------------------------------------------------ XCom references


def resolve_refs(value, ti):
    """value with every {"__updraft_xcom__": {...}} replaced by the pulled XCom."""
    if isinstance(value, list):
        return [resolve_refs(v, ti) for v in value]
    if isinstance(value, dict):
        ref = value.get(_XCOM_REF)
        if len(value) == 1 and isinstance(ref, dict):
            return _pull_ref(ref, ti)
        return dict((k, resolve_refs(v, ti)) for k, v in value.items())
    return value


def _pull_ref(ref, ti):
    task_id = ref.get("task_id")
    key = ref.get("key") or _RETURN_KEY
    mi = ref.get("map_index")
    where = "XCom %s of task %s" % (key, task_id)
    if mi is not None:
        where += " (map index %s)" % mi
    v = get_xcom(ti.dag_id, ti.run_id, task_id, key, mi)
    if v is _MISSING:
        raise TaskError(where + " not found")
    for step in ref.get("path") or []:
        try:
            if isinstance(v, dict):
                v = v[step] if step in v or not isinstance(step, int) else v[str(step)]
            elif isinstance(v, list):
                v = v[int(step)]
            else:
                raise TypeError("a %s cannot be indexed" % type(v).__name__)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise TaskError("%s has no item %r: %s" % (where, step, e)) from None
    return v


# ------------------------------------------------------------- the callable


def load_callable(spec, dags_dir):
    """The function the input names (a TaskFlow object's .function)."""
    name = spec.get("name") or ""
    module_name = spec.get("module") or ""
    file_name = spec.get("file") or ""
    if not name:
        raise TaskError("the input names no callable")
    if module_name:
        mod = importlib.import_module(module_name)
        where = "module " + module_name
    elif file_name:
        path = os.path.join(dags_dir, file_name)
        if not os.path.isfile(path):
            raise TaskError("the callable's file %s is not in the DAG folder" % file_name)
        mod = _load_file(path)
        where = "file " + file_name
    else:
        raise TaskError("the input names neither a module nor a file for %s" % name)
    if not hasattr(mod, name):
        raise TaskError("%s has no function %s" % (where, name))
    fn = getattr(mod, name)
    inner = getattr(fn, "function", None)
    if callable(inner) and not inspect.isclass(fn):
        fn = inner
    if not callable(fn):
        raise TaskError("%s.%s is not callable (it is a %s)" % (module_name or file_name, name, type(fn).__name__))
    return fn


def _load_file(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    mod_name = re.sub(r"\W", "_", stem) or "dagfile"
    if mod_name[0].isdigit():
        mod_name = "_" + mod_name
    have = sys.modules.get(mod_name)
    if have is not None:
        if os.path.abspath(getattr(have, "__file__", "") or "") == os.path.abspath(path):
            return have
        mod_name = "updraft_dagfile_" + mod_name
    spec = importlib.util.spec_from_file_location(mod_name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return mod


def call_with_context(fn, op_args, op_kwargs, context):
    """Calls fn as Airflow's determine_kwargs does: op_args positionally;
    with **kwargs the whole context (op_kwargs merged in); otherwise only
    the context keys (op_kwargs included) that name its parameters."""
    merged = dict(context)
    merged.update(op_kwargs)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn(*op_args, **op_kwargs)
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    has_var_pos = any(p.kind == p.VAR_POSITIONAL for p in params)
    has_var_kw = any(p.kind == p.VAR_KEYWORD for p in params)
    fname = getattr(fn, "__name__", "the callable")
    if len(op_args) > len(positional) and not has_var_pos:
        raise TypeError("%s() takes %d positional arguments but op_args has %d" % (fname, len(positional), len(op_args)))
    filled = set(p.name for p in positional[: len(op_args)])
    for n in filled:
        if n in op_kwargs:
            raise TypeError("%s(): parameter %r is given both in op_args and in op_kwargs" % (fname, n))
    by_name = set(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    if has_var_kw:
        kwargs = dict((k, v) for k, v in merged.items() if k not in filled)
    else:
        kwargs = dict((k, v) for k, v in merged.items() if k in by_name and k not in filled)
        dropped = sorted(k for k in op_kwargs if k not in by_name)
        if dropped:
            _err("updraft: op_kwargs %s are not parameters of %s(): not passed (as Airflow does)" % (", ".join(dropped), fname))
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is not p.empty:
            continue
        if p.name in filled or p.name in kwargs:
            continue
        raise TypeError(
            "%s() needs a value for its parameter %r: give it in op_args or op_kwargs (it is not an Airflow context key)"
            % (fname, p.name)
        )
    return fn(*op_args, **kwargs)


# ------------------------------------------------------------------ modes


def _show(value, show):
    if show:
        _log("Done. Returned value was: " + _cut(repr(value), _REPR_MAX))
    else:
        _log("Done. Returned value not shown")


def _push_return(result, value, name):
    """Puts value as return_value in the result's xcom (None pushes nothing)."""
    if value is None:
        return
    try:
        result["xcom"][_RETURN_KEY] = to_json_value(value)
    except (TypeError, ValueError) as e:
        raise TaskError("the return value of %s is not JSON-serialisable: %s" % (name, e))


def run_python(call, inp, result, name):
    value = call()
    _show(value, inp.get("show_return_value_in_logs", True))
    if inp.get("multiple_outputs") and value is not None:
        if not isinstance(value, dict):
            raise TaskError("multiple_outputs is set but %s returned a %s, not a dict" % (name, type(value).__name__))
        for k in value:
            if not isinstance(k, str):
                raise TaskError("multiple_outputs is set but %s returned a dict with the non-string key %r" % (name, k))
        for k, v in value.items():
            try:
                result["xcom"][k] = to_json_value(v)
            except (TypeError, ValueError) as e:
                raise TaskError("the return value of %s is not JSON-serialisable: %s (key %s)" % (name, e, k))
    _push_return(result, value, name)


def run_branch(call, inp, result, name):
    value = call()
    _show(value, inp.get("show_return_value_in_logs", True))
    bad = "branch callable must return a task id, a list of task ids or None, got %s"
    if value is None:
        ids = []
    elif isinstance(value, str):
        ids = [value]
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            if not isinstance(v, str):
                raise TaskError(bad % ("a %s holding a %s" % (type(value).__name__, type(v).__name__)))
        ids = sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    else:
        raise TaskError(bad % type(value).__name__)
    result["branch"] = ids
    if value is not None:
        result["xcom"][_RETURN_KEY] = ids
    _log("Branch callable returned %s" % ids)


def run_short_circuit(call, inp, result, name):
    value = call()
    _show(value, inp.get("show_return_value_in_logs", True))
    cond = bool(value)
    _log("Condition result is %s" % cond)
    _push_return(result, value, name)
    result["condition"] = cond


def _seconds(x):
    return ("%g" % x) if isinstance(x, float) else str(x)


def run_sensor(call, inp, result, name):
    s = inp.get("sensor") or {}
    interval = float(s.get("poke_interval", 60) or 0)
    timeout = s.get("timeout", 604800)
    timeout = float(604800 if timeout is None else timeout)
    backoff = bool(s.get("exponential_backoff"))
    max_wait = float(s.get("max_wait") or 0)
    soft_fail = bool(s.get("soft_fail"))
    if s.get("mode") == "reschedule":
        _log("mode reschedule: updraft pokes in this process between waits")
    start = time.monotonic()
    n = 0
    while True:
        _log("Poking callable: %s" % name)
        rv = call()
        if hasattr(rv, "is_done"):
            if rv.is_done:
                _log("Success criteria met. Exiting.")
                _push_return(result, getattr(rv, "xcom_value", None), name)
                return
        elif rv:
            _log("Success criteria met. Exiting.")
            return
        if time.monotonic() - start > timeout:
            t = _seconds(timeout if timeout != int(timeout) else int(timeout))
            if soft_fail:
                result["state"] = "skipped"
                result["reason"] = "sensor timed out after %s s (soft_fail)" % t
                _log("Skipping: " + result["reason"])
                return
            raise TaskError("sensor timed out after %s s" % t, final=True)
        wait = interval * (2 ** n) if backoff else interval
        if max_wait > 0:
            wait = min(wait, max_wait)
        n += 1
        time.sleep(wait)


_RUNNERS = {"python": run_python, "branch": run_branch, "short_circuit": run_short_circuit, "sensor": run_sensor}


# ------------------------------------------------------------------- main


def _read_input():
    path = os.environ.get("UPDRAFT_TRY_INPUT_FILE")
    if path:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    elif os.environ.get("UPDRAFT_TRY_INPUT"):
        text = os.environ["UPDRAFT_TRY_INPUT"]
    else:
        raise TaskError("neither UPDRAFT_TRY_INPUT_FILE nor UPDRAFT_TRY_INPUT is set")
    try:
        inp = json.loads(text)
    except ValueError as e:
        raise TaskError("the try's input is not JSON: %s" % e)
    if not isinstance(inp, dict):
        raise TaskError("the try's input is not a JSON object")
    return inp


def _setup_paths(inp, dags_dir):
    """DAG folders first; the shim last, and only when no real Airflow exists."""
    here = os.path.normcase(_HERE)
    sys.path[:] = [p for p in sys.path if os.path.normcase(os.path.abspath(p or ".")) != here]
    if importlib.util.find_spec("airflow") is None:
        sys.path.append(os.path.join(_HERE, "shim"))
    front = []
    for rel in inp.get("sys_path") or []:
        p = os.path.normpath(os.path.join(dags_dir, rel)) if rel else dags_dir
        if p not in front:
            front.append(p)
    sys.path[0:0] = front


def _on_sigterm(signum, frame):
    raise TaskTerminated("Task received SIGTERM signal")


def run(result):
    """Runs the try, filling result; exceptions escape to main."""
    global _current_context
    inp = _read_input()
    mode = inp.get("mode") or "python"
    if mode not in _MODES:
        raise TaskError("unknown mode %r (want one of %s)" % (mode, ", ".join(_MODES)))
    dags_dir = os.path.abspath(os.environ.get("UPDRAFT_DAGS_DIR") or ".")
    _setup_paths(inp, dags_dir)
    spec = inp.get("callable") or {}
    name = spec.get("name") or "?"
    templates_dict = inp.get("templates_dict")
    ctx = build_context(inp.get("context") or {}, templates_dict)
    ti = ctx["ti"]
    op_args = resolve_refs(list(inp.get("op_args") or []), ti)
    op_kwargs = resolve_refs(dict(inp.get("op_kwargs") or {}), ti)
    if templates_dict is not None:
        ctx["templates_dict"] = resolve_refs(templates_dict, ti)
    fn = load_callable(spec, dags_dir)
    # As Airflow's context_merge: the callable's context holds op_kwargs too.
    ctx.update(op_kwargs)
    _current_context = ctx
    try:
        _RUNNERS[mode](lambda: call_with_context(fn, op_args, op_kwargs, ctx), inp, result, name)
    finally:
        _current_context = None
        # Pushed keys go in unless the run itself set them (return_value wins).
        for k, v in ti.pushed.items():
            result["xcom"].setdefault(k, v)
        result["_soft_fail"] = bool((inp.get("sensor") or {}).get("soft_fail")) and mode == "sensor"


def _print_traceback(exc):
    """Prints exc's traceback to stderr from the first frame outside this file."""
    tb = exc.__traceback__
    here = os.path.abspath(__file__)
    while tb is not None and tb.tb_next is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == here:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    sys.stderr.flush()


def _outcome(exc, result):
    """Turns an exception from the try into the result's state and reason."""
    soft = result.get("_soft_fail")
    msg = str(exc)
    if isinstance(exc, SystemExit):
        if exc.code in (None, 0):
            return
        result.update(state="failed", reason="Task failed due to SystemExit(%s)" % exc.code)
        return
    if isinstance(exc, TaskError):
        _err("updraft: " + exc.reason)
        result.update(state="failed", reason=_cut(exc.reason, _REASON_MAX))
        if exc.final:
            result["final"] = True
        return
    if _has_class(exc, "AirflowSkipException"):
        _log("Skipping: " + msg)
        result.update(state="skipped", reason=_cut("skipped: " + msg, _REASON_MAX))
        return
    _print_traceback(exc)
    if isinstance(exc, CredentialRefused):
        result.update(state="failed", reason=_cut(msg, _REASON_MAX))
        return
    fail = _has_class(exc, "AirflowFailException")
    timeout = _has_class(exc, "AirflowSensorTimeout")
    if (fail or timeout) and soft:
        _log("Skipping: soft_fail is set: " + (msg or type(exc).__name__))
        result.update(state="skipped", reason=_cut("%s (soft_fail)" % (msg or type(exc).__name__), _REASON_MAX))
        return
    if fail or timeout:
        result.update(state="failed", final=True, reason=_cut(msg or type(exc).__name__, _REASON_MAX))
        return
    reason = type(exc).__name__ + (": " + msg if msg else "")
    result.update(state="failed", reason=_cut(reason, _REASON_MAX))


def _write_result(result):
    """Writes the result file atomically, or POSTs it; returns an exit code
    override (2 or 3) on failure, else None."""
    path = os.environ.get("UPDRAFT_RESULT_FILE")
    try:
        body = json.dumps(result, default=_json_default)
    except (TypeError, ValueError) as e:  # cannot happen: values are JSON already
        _err("updraft: cannot encode the result: %s" % e)
        return 2
    if path:
        try:
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            _err("updraft: cannot write the result file %s: %s" % (path, e))
            return 2
        return None
    try:
        api_call("POST", "/execution/result", result)
    except APIError as e:
        _err("updraft: cannot report the result: %s" % e)
        return 3
    except RuntimeError as e:
        _err("updraft: cannot report the result: %s" % e)
        return 2
    return None


def main():
    global _TOKEN, _API_URL
    _TOKEN = os.environ.pop("UPDRAFT_TRY_TOKEN", "")
    _API_URL = (os.environ.get("UPDRAFT_API_URL") or "").rstrip("/")
    sys.modules["_updraft_runtime"] = sys.modules[__name__]
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="[%(asctime)s] %(levelname)s %(name)s - %(message)s"
    )
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        pass
    result = {"state": "success", "xcom": {}}
    try:
        run(result)
    except BaseException as e:  # noqa: the try's outcome, whatever it is
        _outcome(e, result)
    result.pop("_soft_fail", None)
    if result["state"] != "success":
        result.pop("branch", None)
        result.pop("condition", None)
        result["xcom"] = {}
    if not result["xcom"]:
        del result["xcom"]
    code = _write_result(result)
    if code is None:
        code = 1 if result["state"] == "failed" else 0
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    # As Airflow's task runner: end now, whatever threads the callable left.
    os._exit(code)


if __name__ == "__main__":
    main()
