"""Connections, read through updraft's Execution API."""

import json
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from airflow._updraft import runtime
from airflow.exceptions import AirflowNotFoundException


class Connection(object):
    """Airflow's Connection: its fields, extra_dejson and get_uri()."""

    def __init__(
        self,
        conn_id=None,
        conn_type=None,
        description=None,
        host=None,
        login=None,
        password=None,
        schema=None,
        port=None,
        extra=None,
        uri=None,
    ):
        self.conn_id = conn_id
        self.conn_type = conn_type
        self.description = description
        self.host = host
        self.login = login
        self.password = password
        self.schema = schema
        self.port = int(port) if port not in (None, "") else None
        if isinstance(extra, dict):
            extra = json.dumps(extra)
        self.extra = extra
        if uri:
            self._parse_uri(uri)

    def __repr__(self):
        return "Connection(conn_id=%r, conn_type=%r, host=%r)" % (self.conn_id, self.conn_type, self.host)

    @classmethod
    def get(cls, conn_id):
        """The connection named conn_id; AirflowNotFoundException when missing."""
        data = runtime().get_connection(conn_id)
        if data is None:
            raise AirflowNotFoundException("The conn_id `%s` isn't defined" % conn_id)
        return cls(
            conn_id=data.get("conn_id", conn_id),
            conn_type=data.get("conn_type"),
            description=data.get("description"),
            host=data.get("host"),
            login=data.get("login"),
            password=data.get("password"),
            schema=data.get("schema"),
            port=data.get("port"),
            extra=data.get("extra"),
        )

    get_connection_from_secrets = get

    @property
    def extra_dejson(self):
        """extra as a dict ({} when empty or not a JSON object)."""
        if not self.extra:
            return {}
        try:
            v = json.loads(self.extra)
        except ValueError:
            return {}
        return v if isinstance(v, dict) else {}

    def get_password(self):
        return self.password

    def get_extra(self):
        return self.extra

    def get_uri(self):
        """The connection as a URI: type://login:password@host:port/schema?extra."""
        uri = (self.conn_type.lower().replace("_", "-") + "://") if self.conn_type else "//"
        auth = ""
        if self.login is not None:
            auth += quote(self.login, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        if auth:
            uri += auth + "@"
        host = quote(self.host, safe="") if self.host else ""
        if self.port:
            host += (":%d" % self.port) if (host or auth) else ("@:%d" % self.port)
        if self.schema:
            host += "/" + quote(self.schema, safe="")
        uri += host
        if self.extra:
            extra = self.extra_dejson
            sep = "?" if self.schema else "/?"
            flat = extra and all(isinstance(v, str) for v in extra.values())
            if flat:
                uri += sep + urlencode(extra)
            else:
                uri += sep + urlencode({"__extra__": self.extra})
        return uri

    def _parse_uri(self, uri):
        u = urlsplit(uri)
        self.conn_type = u.scheme.replace("-", "_") or None
        self.host = unquote(u.hostname) if u.hostname else None
        self.login = unquote(u.username) if u.username is not None else None
        self.password = unquote(u.password) if u.password is not None else None
        self.port = u.port
        schema = u.path[1:] if u.path.startswith("/") else u.path
        self.schema = unquote(schema) or None
        q = dict(parse_qsl(u.query, keep_blank_values=True))
        if "__extra__" in q:
            self.extra = q["__extra__"]
        elif q:
            self.extra = json.dumps(q)
