"""TaskFlow's @task and @dag.

@task (and @task(), @task(multiple_outputs=True), @task.branch, ...) wraps a
function in an object that calls it and keeps it as .function; updraft's
runner calls .function. @dag returns the function as it is.
"""

import functools


class TaskFunction(object):
    """A @task-decorated function: callable, with .function the original."""

    def __init__(self, function, kind="python", kwargs=None):
        functools.update_wrapper(self, function)
        self.function = function
        self.kind = kind
        self.kwargs = dict(kwargs or {})
        self.multiple_outputs = bool(self.kwargs.get("multiple_outputs", False))

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)

    def override(self, **kwargs):
        merged = dict(self.kwargs)
        merged.update(kwargs)
        return TaskFunction(self.function, self.kind, merged)

    def __repr__(self):
        return "<@task.%s %s>" % (self.kind, getattr(self.function, "__qualname__", self.function))


class _TaskDecorator(object):
    def __init__(self, kind):
        self._kind = kind

    def __call__(self, python_callable=None, **kwargs):
        if python_callable is not None:
            return TaskFunction(python_callable, self._kind, kwargs)
        return lambda fn: TaskFunction(fn, self._kind, kwargs)


class _TaskDecoratorCollection(_TaskDecorator):
    """`task`, with the kinds as attributes: task.branch, task.sensor, ..."""

    def __init__(self):
        _TaskDecorator.__init__(self, "python")
        for kind in (
            "python",
            "branch",
            "short_circuit",
            "sensor",
            "external_python",
            "virtualenv",
            "branch_external_python",
            "branch_virtualenv",
        ):
            setattr(self, kind, _TaskDecorator(kind))


task = _TaskDecoratorCollection()


def dag(*args, **kwargs):
    """A no-op: @dag and @dag(...) return the function unchanged."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda fn: fn


__all__ = ["dag", "task"]
