"""airflow.sdk.exceptions: the same classes as airflow.exceptions."""

from airflow.exceptions import (  # noqa: F401
    AirflowBadRequest,
    AirflowConfigException,
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSensorTimeout,
    AirflowSkipException,
)
