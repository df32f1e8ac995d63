"""Variables, read through updraft's Execution API."""

import json

from airflow._updraft import runtime

_NOTSET = object()


class Variable(object):
    """Airflow's Variable: get() reads; writing is not possible in a task."""

    def __init__(self, key=None, val=None, description=None):
        self.key = key
        self.val = val
        self.description = description

    def __repr__(self):
        return "Variable(key=%r)" % (self.key,)

    @classmethod
    def get(cls, key, default_var=_NOTSET, deserialize_json=False, default=_NOTSET):
        """The value (JSON-decoded with deserialize_json); the default when it
        does not exist, else KeyError. Airflow 3 spells default_var default."""
        if default is not _NOTSET:
            default_var = default
        value = runtime().get_variable(key)
        if value is None:
            if default_var is _NOTSET:
                raise KeyError("Variable %s does not exist" % key)
            return default_var
        return json.loads(value) if deserialize_json else value

    @classmethod
    def setdefault(cls, key, default, description=None, deserialize_json=False):
        """The existing value; a missing one cannot be created in a task."""
        value = cls.get(key, default_var=None, deserialize_json=deserialize_json)
        if value is None:
            cls.set(key, default)
        return value

    @classmethod
    def set(cls, key, value, description=None, serialize_json=False, session=None):
        raise NotImplementedError("updraft tasks cannot write Variables; set them in the UI or API")

    @classmethod
    def update(cls, key, value, serialize_json=False, session=None):
        raise NotImplementedError("updraft tasks cannot write Variables; set them in the UI or API")

    @classmethod
    def delete(cls, key, session=None):
        raise NotImplementedError("updraft tasks cannot write Variables; set them in the UI or API")
