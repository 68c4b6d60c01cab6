"""Exceptions the Odoo simulator reports, named and shaped exactly as a real Odoo names them.

odoo.md §3.2, §4.1 and §10.1: a client classifies on the dotted class name (`data.name` over
JSON-RPC, the body `name` and the HTTP status over JSON-2, the fault code over XML-RPC), so every
error carries all three.
"""

from __future__ import annotations

from typing import Any, ClassVar

# The frames are cosmetic: clients must never parse them (odoo.md §3.2 only promises a string that
# starts with "Traceback" and ends with "<Class>: <message>\n"). Paths are relative on purpose.
_FRAMES: dict[str, tuple[str, ...]] = {
    "jsonrpc": (
        '  File "odoo/http.py", line 1638, in _serve_db\n'
        "    return service_model.retrying(self._serve_ir_http, self.env)\n",
        '  File "odoo/http.py", line 1905, in dispatch\n'
        "    result = self.request.registry['ir.http']._dispatch(endpoint)\n",
        '  File "odoo/service/model.py", line 133, in retrying\n    result = func()\n',
    ),
    "json2": (
        '  File "odoo/http.py", line 2164, in _serve_db\n'
        "    return service_model.retrying(serve_func, env=self.env)\n",
        '  File "odoo/addons/rpc/controllers/json2.py", line 119, in web_json_2_rpc\n'
        "    result = func(records, **kwargs)\n",
    ),
    "xmlrpc": (
        '  File "odoo/addons/base/controllers/rpc.py", line 156, in xmlrpc_2\n'
        "    response = self._xmlrpc(service)\n",
        '  File "odoo/service/model.py", line 133, in retrying\n    result = func()\n',
    ),
}


class OdooError(Exception):
    """An exception raised "inside Odoo" and serialized to the client."""

    odoo_name: str = "builtins.Exception"
    http_status: int = 500  # JSON-2 status (odoo.md §4.1)
    xmlrpc_code: int = 1  # /xmlrpc/2 faultCode (odoo.md §4.1)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)

    @property
    def message(self) -> str:
        """Return `str(exception)`, which Odoo sends as `message`."""
        return str(self)

    @property
    def arguments(self) -> list[Any]:
        """Return `exception.args`, which Odoo sends as `arguments`."""
        return list(self.args)

    def debug(self, transport: str = "jsonrpc") -> str:
        """Return a traceback text ending in the `<module>.<Class>: <message>` line."""
        name = self.odoo_name.removeprefix("builtins.")
        frames = "".join(_FRAMES.get(transport, _FRAMES["jsonrpc"]))
        message = self.message
        last = f"{name}: {message}" if message else name
        return f"Traceback (most recent call last):\n{frames}{last}\n"

    def serialize(self, version_major: int, transport: str = "jsonrpc") -> dict[str, Any]:
        """Return `http.serialize_exception(e)`: key order differs before and after 17."""
        data = {
            "name": self.odoo_name,
            "debug": self.debug(transport),
            "message": self.message,
            "arguments": self.arguments,
            "context": {},
        }
        if version_major >= 17:
            # odoo/http.py serialize_exception (17+): name, message, arguments, context, debug.
            order = ("name", "message", "arguments", "context", "debug")
            return {key: data[key] for key in order}
        return data


class UserError(OdooError):
    """odoo.exceptions.UserError: a business rule refused the call."""

    odoo_name = "odoo.exceptions.UserError"
    http_status = 422
    xmlrpc_code = 2


class ValidationError(UserError):
    """odoo.exceptions.ValidationError, also what IntegrityErrors become (§4.2)."""

    odoo_name = "odoo.exceptions.ValidationError"


class MissingError(UserError):
    """odoo.exceptions.MissingError: the record does not exist or was deleted."""

    odoo_name = "odoo.exceptions.MissingError"
    http_status = 404


class AccessError(UserError):
    """odoo.exceptions.AccessError: the user lacks a group or an ACL."""

    odoo_name = "odoo.exceptions.AccessError"
    http_status = 403
    xmlrpc_code = 4


class AccessDenied(OdooError):
    """odoo.exceptions.AccessDenied: bad login, password or key."""

    odoo_name = "odoo.exceptions.AccessDenied"
    http_status = 403
    xmlrpc_code = 3

    def __init__(self, message: str = "Access Denied") -> None:
        super().__init__(message)


class LockError(UserError):
    """odoo.exceptions.LockError (JSON-2 409): the rows are locked by another transaction."""

    odoo_name = "odoo.exceptions.LockError"
    http_status = 409


class OperationalError(OdooError):
    """psycopg2.OperationalError, e.g. the database does not exist (§4.2: config, not transient)."""

    odoo_name = "psycopg2.OperationalError"


class SerializationFailure(OdooError):
    """psycopg2.errors.SerializationFailure after Odoo's own 5 retries ran out (§4.3)."""

    odoo_name = "psycopg2.errors.SerializationFailure"


class PythonError(OdooError):
    """A plain Python exception escaping the ORM: ValueError, TypeError, KeyError..."""

    def __init__(self, type_name: str, *args: Any) -> None:
        super().__init__(*args)
        self.type_name = type_name
        self.odoo_name = f"builtins.{type_name}"

    @property
    def message(self) -> str:
        """Return `str(e)`; a KeyError's str is the repr of its key, quotes included."""
        if self.type_name == "KeyError" and len(self.args) == 1:
            return repr(self.args[0])
        return super().message

    @classmethod
    def wrap(cls, exc: Exception) -> PythonError:
        """Convert a real Python exception raised while calling a model method."""
        return cls(type(exc).__name__, *exc.args)


class HttpException(OdooError):
    """A werkzeug HTTPException, as the JSON-2 dispatcher serializes it (odoo.md §10.1)."""

    names: ClassVar[dict[int, str]] = {
        400: "BadRequest",
        401: "Unauthorized",
        404: "NotFound",
        422: "UnprocessableEntity",
    }

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.http_status = status
        self.description = description
        self.odoo_name = f"werkzeug.exceptions.{self.names.get(status, 'HTTPException')}"

    @property
    def message(self) -> str:
        """Return the description, as the JSON-2 handle_error passes `message=exc.description`."""
        return self.description

    @property
    def arguments(self) -> list[Any]:
        """Return `[description, code]` (addons/rpc/controllers/json2.py handle_error)."""
        return [self.description, self.status]


def python_error(type_name: str, message: str) -> PythonError:
    """Build a `builtins.<type_name>` error with one message argument."""
    return PythonError(type_name, message)
