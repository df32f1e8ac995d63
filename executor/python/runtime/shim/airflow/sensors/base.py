"""Sensors: PokeReturnValue and a plain BaseSensorOperator."""

from airflow.models.baseoperator import BaseOperator


class PokeReturnValue(object):
    """A poke's answer: done or not, and the XCom to push when done."""

    def __init__(self, is_done, xcom_value=None):
        self.is_done = is_done
        self.xcom_value = xcom_value

    def __bool__(self):
        return bool(self.is_done)

    def __repr__(self):
        return "PokeReturnValue(is_done=%r, xcom_value=%r)" % (self.is_done, self.xcom_value)


class BaseSensorOperator(BaseOperator):
    def poke(self, context):
        raise NotImplementedError("%s.poke is not implemented" % type(self).__name__)
