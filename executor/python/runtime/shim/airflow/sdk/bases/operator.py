from airflow.models.baseoperator import BaseOperator  # noqa: F401
