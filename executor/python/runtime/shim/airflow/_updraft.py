"""The shim's link to updraft's runner (internal)."""

import sys


def runtime():
    """The running updraft runner's module; RuntimeError outside a try."""
    rt = sys.modules.get("_updraft_runtime")
    if rt is None:
        raise RuntimeError(
            "this is updraft's stand-in for Airflow: it works only inside a task that updraft runs"
        )
    return rt
