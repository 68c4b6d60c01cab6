"""HTTP face of the Odoo simulator: JSON-RPC, JSON-2 (19+), XML-RPC and `/_sandbox` controls.

Envelopes follow odoo.md §3 and §10.1: JSON-RPC always answers HTTP 200 and omits `result` for
None; JSON-2 answers the bare value or `{name, message, arguments, context, debug}` with the
status of §4.1; an unknown path is werkzeug's 404 HTML page; proxy faults answer nginx's pages.
"""

from __future__ import annotations

import json
import xmlrpc.client
from collections.abc import Awaitable, Callable
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from guardia.sandbox.odoo.errors import (
    AccessDenied,
    AccessError,
    HttpException,
    OdooError,
    PythonError,
    UserError,
)
from guardia.sandbox.odoo.faults import FaultError
from guardia.sandbox.odoo.simulator import OdooSimulator, Outcome

MAX_BODY: Final = 4 * 1024 * 1024
_PROXY_TITLES: Final = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}
NOT_FOUND_HTML: Final = (
    "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
    "<p>The requested URL was not found on the server. If you entered the URL manually please "
    "check your spelling and try again.</p>\n"
)


def _werkzeug_page(status: int, title: str, description: str) -> HTMLResponse:
    body = (
        f"<!doctype html>\n<html lang=en>\n<title>{status} {title}</title>\n<h1>{title}</h1>\n"
        f"<p>{description}</p>\n"
    )
    return HTMLResponse(body, status_code=status)


def _proxy_page(status: int) -> HTMLResponse:
    """Return what nginx answers when Odoo behind it is down or slow (odoo.md §4.3)."""
    title = _PROXY_TITLES.get(status, f"{status} Error")
    body = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return HTMLResponse(body, status_code=status, headers={"server": "nginx"})


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _xml_fault(exc: OdooError) -> str:
    # rpc.py xmlrpc_handle_exception_int: AccessError 4, AccessDenied 3, UserError 2, else 1 with
    # the full traceback as faultString.
    if isinstance(exc, AccessError | AccessDenied | UserError):
        fault = xmlrpc.client.Fault(exc.xmlrpc_code, exc.message)
    else:
        fault = xmlrpc.client.Fault(1, exc.debug("xmlrpc"))
    return xmlrpc.client.dumps(fault, methodresponse=True, allow_none=False)


def create_app(sim: OdooSimulator) -> FastAPI:
    """Return the simulator's FastAPI app (Odoo routes plus `/_sandbox` controls)."""
    app = FastAPI(
        title="Odoo simulator (Guardia sandbox)",
        description="Local stand-in for an Odoo 16-19 server. Control endpoints: /_sandbox.",
        docs_url="/_sandbox/docs",
        redoc_url=None,
        openapi_url="/_sandbox/openapi.json",
    )
    major = sim.major

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/_sandbox"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        if exc.status_code == 405:
            return _werkzeug_page(
                405, "Method Not Allowed", "The method is not allowed for the requested URL."
            )
        return HTMLResponse(NOT_FOUND_HTML, status_code=404)

    @app.middleware("http")
    async def _proxy_faults(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith("/_sandbox"):
            return await call_next(request)
        fault = sim.take_proxy_fault()
        if fault is not None:
            return _proxy_page(503 if fault.kind == "down" else fault.status)
        sim.begin_transaction()
        await sim.delay(sim.slow_seconds())
        return await call_next(request)

    def _wrong_type(request: Request, routing_type: str) -> Response | None:
        """400 unless the body is JSON: `_set_request_dispatcher`, before any auth (17+)."""
        mimetype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if mimetype in ("application/json", "application/json-rpc"):
            return None
        return _werkzeug_page(
            400,
            "Bad Request",
            f"Request inferred type is compatible with ['http'] but '{routing_type}' was forced "
            "by the path.",
        )

    async def _body(request: Request) -> bytes:
        raw = await request.body()
        return raw[:MAX_BODY]

    # --- JSON-RPC ------------------------------------------------------------------------------

    @app.post("/jsonrpc")
    async def jsonrpc(request: Request) -> Response:
        """`POST /jsonrpc`: services common, db and object (odoo.md §3.2)."""
        wrong = _wrong_type(request, "jsonrpc" if major >= 19 else "json")
        if wrong is not None:
            return wrong
        try:
            payload = json.loads(await _body(request))
        except ValueError:
            return Response("Invalid JSON data", status_code=400, media_type="text/html")
        if not isinstance(payload, dict):
            return Response("Invalid JSON-RPC data", status_code=400, media_type="text/html")
        request_id = payload.get("id")
        params = payload.get("params")
        try:
            if not isinstance(params, dict) or not {"service", "method", "args"} <= set(params):
                missing = [
                    k
                    for k in ("service", "method", "args")
                    if not isinstance(params, dict) or k not in params
                ]
                names = [repr(m) for m in missing]
                listed = names[0] if len(names) == 1 else ", ".join(names[:-1])
                if len(names) > 1:
                    listed += f"{',' if len(names) > 2 else ''} and {names[-1]}"
                plural = "s" if len(names) > 1 else ""
                raise PythonError(
                    "TypeError",
                    f"RPC.jsonrpc() missing {len(names)} required positional argument{plural}: "
                    + listed,
                )
            outcome = sim.dispatch(params["service"], params["method"], params["args"])
        except OdooError as exc:
            error = {
                # odoo.md §3.2: 200 up to 18; a newer dispatcher sends 0: never key on it.
                "code": 200 if major <= 18 else 0,
                "message": "Odoo Server Error",
                "data": exc.serialize(major, "jsonrpc"),
            }
            return _json({"jsonrpc": "2.0", "id": request_id, "error": error})
        await sim.delay(outcome.stall)
        envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        if outcome.value is not None:
            envelope["result"] = outcome.value
        return _json(envelope)

    # --- XML-RPC -------------------------------------------------------------------------------

    @app.post("/xmlrpc/2/{service}")
    async def xmlrpc_2(service: str, request: Request) -> Response:
        """`POST /xmlrpc/2/<service>`: integer fault codes; allow_none=False (odoo.md §3.1)."""
        try:
            try:
                params, method = xmlrpc.client.loads(await _body(request))
            except Exception as exc:  # any parse failure is fault 1, as in rpc.py
                raise PythonError(type(exc).__name__, str(exc)) from exc
            outcome: Outcome = sim.dispatch(service, method, list(params))
        except OdooError as exc:
            return Response(_xml_fault(exc), media_type="text/xml")
        await sim.delay(outcome.stall)
        try:
            body = xmlrpc.client.dumps((outcome.value,), methodresponse=True, allow_none=False)
        except TypeError as exc:
            # The method already committed: a None result still becomes fault 1 (odoo.md §3.1).
            body = _xml_fault(PythonError("TypeError", str(exc)))
        except OverflowError as exc:
            body = _xml_fault(PythonError("OverflowError", str(exc)))
        return Response(body, media_type="text/xml")

    # --- JSON-2 (19+) --------------------------------------------------------------------------

    if major >= 19:

        def json2_error(exc: OdooError) -> Response:
            """Serialize like `Json2RpcDispatcher.handle_error`: the status of §4.1."""
            headers = {"www-authenticate": "Bearer"} if exc.http_status == 401 else None
            return _json(exc.serialize(major, "json2"), exc.http_status, headers)

        @app.post("/json/2/{model}/{method}")
        async def json2(model: str, method: str, request: Request) -> Response:
            """`POST /json/2/<model>/<method>`: bearer key, named params, bare JSON value."""
            if not sim.database_available(request.headers.get("x-odoo-database")):
                return HTMLResponse(NOT_FOUND_HTML, status_code=404)  # no db: nodb routing
            wrong = _wrong_type(request, "json2")
            if wrong is not None:
                return wrong
            try:
                outcome = sim.json2(
                    model, method, request.headers.get("authorization"), await _body(request)
                )
            except OdooError as exc:
                return json2_error(exc)
            await sim.delay(outcome.stall)
            return _json(outcome.value)

        @app.api_route("/json/2", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        @app.api_route("/json/2/{subpath:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        async def json2_404(request: Request) -> Response:
            """Any other `/json/2` URL: 404 "Did you mean POST /json/2/<model>/<method>?"."""
            if not sim.database_available(request.headers.get("x-odoo-database")):
                return HTMLResponse(NOT_FOUND_HTML, status_code=404)
            wrong = _wrong_type(request, "json2")
            if wrong is not None:
                return wrong
            return json2_error(HttpException(404, "Did you mean POST /json/2/<model>/<method>?"))

        @app.get("/web/version")
        async def web_version() -> Response:
            """`GET /web/version` (odoo.md §10.2)."""
            return _json(sim.web_version())

    # --- sandbox controls ----------------------------------------------------------------------

    control = APIRouter(prefix="/_sandbox", tags=["sandbox"])

    async def _control_body(request: Request) -> object:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _bad(exc: FaultError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @control.post("/faults", status_code=201)
    async def add_fault(request: Request) -> JSONResponse:
        """Install a fault: {kind, count?, code?, seconds?, status?}."""
        try:
            return JSONResponse(sim.add_fault(await _control_body(request)), status_code=201)
        except FaultError as exc:
            return _bad(exc)

    @control.get("/faults")
    async def list_faults() -> JSONResponse:
        """List active faults."""
        return JSONResponse({"data": sim.faults.to_json()})

    @control.delete("/faults")
    async def clear_faults() -> JSONResponse:
        """Remove every fault (removals undone, stalled answers released)."""
        return JSONResponse(sim.clear_faults())

    @control.post("/restore")
    async def restore() -> JSONResponse:
        """Undo removals: accounts, journals and the bot's group come back."""
        return JSONResponse(sim.restore())

    @control.post("/accounts", status_code=201)
    async def add_account(request: Request) -> JSONResponse:
        """Create an account {code, name, account_type}: a new id, as a re-created one gets."""
        try:
            return JSONResponse(sim.add_account(await _control_body(request)), status_code=201)
        except FaultError as exc:
            return _bad(exc)

    @control.get("/moves")
    async def moves() -> JSONResponse:
        """Return every journal entry with its lines."""
        return JSONResponse(sim.moves())

    @control.get("/state")
    async def state() -> JSONResponse:
        """Return version, database, login and active faults."""
        return JSONResponse(sim.state())

    app.include_router(control)
    return app
