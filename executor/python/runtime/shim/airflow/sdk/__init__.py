"""airflow.sdk (Airflow 3): the task-facing names."""

from airflow.decorators import dag, task
from airflow.hooks.base import BaseHook
from airflow.models.baseoperator import BaseOperator
from airflow.models.connection import Connection
from airflow.models.dag import DAG
from airflow.models.variable import Variable
from airflow.operators.python import get_current_context
from airflow.sensors.base import BaseSensorOperator, PokeReturnValue
from airflow.utils.context import Context

__all__ = [
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "Connection",
    "Context",
    "DAG",
    "PokeReturnValue",
    "Variable",
    "dag",
    "get_current_context",
    "task",
]
