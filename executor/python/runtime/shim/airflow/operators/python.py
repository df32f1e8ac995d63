"""airflow.operators.python: get_current_context and the operator names."""

from airflow._updraft import runtime
from airflow.models.baseoperator import BaseOperator


def get_current_context():
    """The running try's context dict; RuntimeError outside a task."""
    try:
        rt = runtime()
    except RuntimeError:
        raise RuntimeError(
            "Current context was requested but no context was found! Are you running within an Airflow task?"
        ) from None
    return rt.current_context()


class PythonOperator(BaseOperator):
    pass


class BranchPythonOperator(PythonOperator):
    pass


class ShortCircuitOperator(PythonOperator):
    pass
