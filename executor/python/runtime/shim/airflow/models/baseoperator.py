"""A plain BaseOperator: helper modules may import or subclass it."""

import logging


class BaseOperator(object):
    """Keeps the keyword arguments it is given as attributes; wiring
    (>>, <<) does nothing."""

    def __init__(self, *args, **kwargs):
        self.__dict__.update(kwargs)
        self.task_id = kwargs.get("task_id")

    def __repr__(self):
        return "<Task(%s): %s>" % (type(self).__name__, self.task_id)

    @property
    def log(self):
        return logging.getLogger("airflow.task.operators." + type(self).__name__)

    def execute(self, context):
        raise NotImplementedError("%s.execute is not implemented" % type(self).__name__)

    def set_upstream(self, other, *args, **kwargs):
        return None

    def set_downstream(self, other, *args, **kwargs):
        return None

    def __rshift__(self, other):
        return other

    def __lshift__(self, other):
        return other

    def __rrshift__(self, other):
        return self

    def __rlshift__(self, other):
        return self
