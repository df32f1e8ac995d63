"""airflow.models: the classes callables import from it."""

from airflow.models.baseoperator import BaseOperator
from airflow.models.connection import Connection
from airflow.models.dag import DAG
from airflow.models.variable import Variable

__all__ = ["BaseOperator", "Connection", "DAG", "Variable"]
