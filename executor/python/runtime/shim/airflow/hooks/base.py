"""BaseHook: connections for hooks and callables."""

import logging

from airflow.models.connection import Connection


class BaseHook(object):
    """Airflow's BaseHook: get_connection(conn_id) reads a connection."""

    def __init__(self, *args, **kwargs):
        pass

    @property
    def log(self):
        return logging.getLogger("airflow.task.hooks." + type(self).__name__)

    @classmethod
    def get_connection(cls, conn_id):
        """The Connection; AirflowNotFoundException when it does not exist."""
        return Connection.get(conn_id)

    def get_conn(self):
        raise NotImplementedError("%s.get_conn is not implemented" % type(self).__name__)
