"""Airflow's exceptions (one definition; airflow.sdk.exceptions re-exports)."""


class AirflowException(Exception):
    """Base of Airflow's exceptions: the task fails (and may be retried)."""

    status_code = 500


class AirflowBadRequest(AirflowException):
    status_code = 400


class AirflowNotFoundException(AirflowException):
    """A Variable, connection or other object does not exist."""

    status_code = 404


class AirflowConfigException(AirflowException):
    pass


class AirflowSkipException(AirflowException):
    """The task ends as skipped."""


class AirflowFailException(AirflowException):
    """The task fails with no retry."""


class AirflowSensorTimeout(AirflowException):
    """A sensor ran out of time: the task fails with no retry."""
