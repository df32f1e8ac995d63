"""A minimal DAG class: helper modules may import and build one."""


class DAG(object):
    """Accepts Airflow's arguments and does nothing with them; updraft's DAGs
    are YAML."""

    def __init__(self, dag_id=None, *args, **kwargs):
        self.dag_id = dag_id if dag_id is not None else kwargs.get("dag_id")
        self.args = args
        self.kwargs = kwargs
        self.tasks = []

    def __repr__(self):
        return "<DAG: %s>" % (self.dag_id,)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
