"""Airflow 3's home of the Python operators: the same names as airflow.operators.python."""

from airflow.operators.python import (  # noqa: F401
    BranchPythonOperator,
    PythonOperator,
    ShortCircuitOperator,
    get_current_context,
)
