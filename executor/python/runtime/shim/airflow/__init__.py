"""updraft's stand-in for Airflow's Python API.

Not Airflow: a small standard-library package that updraft's runner puts at
the end of sys.path when the interpreter has no real Airflow, so that task
callables and their helper modules can import the Airflow 2 and Airflow 3
(airflow.sdk) names they use: Variables, connections, the context, XComs,
exceptions, the @task decorator. It works only inside a try updraft runs.
"""

__version__ = "3.0.0+updraft"


def __getattr__(name):
    # Lazy, as Airflow's own package: `from airflow import DAG`.
    if name == "DAG":
        from airflow.models.dag import DAG

        return DAG
    raise AttributeError("module 'airflow' has no attribute %r" % name)
