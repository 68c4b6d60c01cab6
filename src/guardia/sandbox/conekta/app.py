"""HTTP face of the Conekta simulator: the Conekta API subset plus `/_sandbox` control endpoints."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from guardia.sandbox.conekta import model
from guardia.sandbox.conekta.model import ErrorDetail, InvalidParameters, SimulatedApiError
from guardia.sandbox.conekta.simulator import ConektaSimulator


def _error_response(exc: SimulatedApiError) -> JSONResponse:
    log_id = secrets.token_hex(12)  # Conekta's log_id is 24 hex (schemas/errors/error.yml)
    return JSONResponse(exc.to_json(log_id), status_code=exc.status_code, headers=exc.headers)


async def _json_body(request: Request) -> object:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return await request.json()
    except ValueError:
        raise InvalidParameters(
            details=[
                ErrorDetail(
                    "conekta.errors.parameter_validation.body.malformed_json",
                    "The request body is not valid JSON.",
                    "El cuerpo de la solicitud no es JSON válido.",
                    "body",
                )
            ]
        ) from None


def _url_for(request: Request) -> Callable[[dict[str, str]], str]:
    def build(params: dict[str, str]) -> str:
        return str(request.url.replace(query=urlencode(params)))

    return build


def create_app(sim: ConektaSimulator) -> FastAPI:
    """Return the simulator's FastAPI app; its lifespan starts and stops delivery."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await sim.start()
        try:
            yield
        finally:
            await sim.stop()

    app = FastAPI(
        title="Conekta simulator (Guardia sandbox)",
        description="Local stand-in for api.conekta.io. Control endpoints live under /_sandbox.",
        lifespan=lifespan,
    )

    @app.exception_handler(SimulatedApiError)
    async def _simulated(_: Request, exc: SimulatedApiError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error: SimulatedApiError = model.ResourceNotFound(
                "The requested URL was not found on this server.",
                code="conekta.errors.resource_not_found.route",
                message="El recurso no ha sido encontrado.",
            )
        else:
            error = SimulatedApiError(str(exc.detail), status_code=exc.status_code)
        return _error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            ErrorDetail(
                "conekta.errors.parameter_validation.request.invalid",
                str(e.get("msg", "invalid")),
                "Parámetro inválido.",
                ".".join(str(p) for p in e.get("loc", ())),
            )
            for e in exc.errors()
        ]
        return _error_response(InvalidParameters(details=details))

    @app.middleware("http")
    async def _injected_api_errors(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not request.url.path.startswith("/_sandbox"):
            error = sim.take_api_error(request.url.path)
            if error is not None:
                return _error_response(error)
        return await call_next(request)

    async def require_api_key(request: Request) -> None:
        """Reject calls without the configured private key, as Conekta does."""
        sim.check_api_key(request.headers.get("authorization"))

    api = APIRouter(dependencies=[Depends(require_api_key)])

    @api.post("/orders")
    async def create_order(request: Request) -> JSONResponse:
        """Create an order (card is paid at once; SPEI and OXXO wait for payment)."""
        body = await _json_body(request)
        return JSONResponse(sim.create_order(body, request.headers.get("idempotency-key")))

    @api.get("/orders")
    async def list_orders(request: Request) -> JSONResponse:
        """List orders newest first, filtered by updated_at/created_at/payment_status."""
        return JSONResponse(sim.list_orders(dict(request.query_params), _url_for(request)))

    @api.get("/orders/{order_id}")
    async def get_order(order_id: str) -> JSONResponse:
        """Return one order."""
        return JSONResponse(sim.get_order(order_id))

    @api.get("/events")
    async def list_events(request: Request) -> JSONResponse:
        """List events newest first."""
        return JSONResponse(sim.list_events(dict(request.query_params), _url_for(request)))

    @api.get("/events/{event_id}")
    async def get_event(event_id: str) -> JSONResponse:
        """Return one event with its webhook logs."""
        return JSONResponse(sim.get_event(event_id))

    @api.post("/events/{event_id}/resend")
    async def resend_event(event_id: str, request: Request) -> JSONResponse:
        """Deliver an event again to the given webhooks and return the webhook log."""
        return JSONResponse(await sim.resend_event(event_id, await _json_body(request)))

    @api.post("/webhooks")
    async def create_webhook(request: Request) -> JSONResponse:
        """Register a webhook endpoint."""
        return JSONResponse(sim.create_webhook(await _json_body(request)))

    @api.get("/webhooks")
    async def list_webhooks() -> JSONResponse:
        """List webhook endpoints."""
        return JSONResponse(sim.list_webhooks())

    @api.put("/webhooks/{webhook_id}")
    async def update_webhook(webhook_id: str, request: Request) -> JSONResponse:
        """Update a webhook endpoint."""
        return JSONResponse(sim.update_webhook(webhook_id, await _json_body(request)))

    @api.delete("/webhooks/{webhook_id}")
    async def delete_webhook(webhook_id: str) -> JSONResponse:
        """Delete a webhook endpoint."""
        return JSONResponse(sim.delete_webhook(webhook_id))

    @api.post("/webhooks/{webhook_id}/test")
    async def test_webhook(webhook_id: str) -> JSONResponse:
        """Send a webhook_ping to one endpoint."""
        return JSONResponse(sim.test_webhook(webhook_id))

    @api.get("/webhook_keys")
    async def webhook_keys() -> JSONResponse:
        """List webhook signing keys (the active one)."""
        return JSONResponse(sim.webhook_keys())

    @api.get("/transactions")
    async def list_transactions(request: Request) -> JSONResponse:
        """List ledger transactions newest first, filtered by charge_id/type (§1.6)."""
        return JSONResponse(sim.list_transactions(dict(request.query_params), _url_for(request)))

    @api.get("/transactions/{txn_id}")
    async def get_transaction(txn_id: str) -> JSONResponse:
        """Return one transaction."""
        return JSONResponse(sim.get_transaction(txn_id))

    @api.get("/transfers")
    async def list_transfers(request: Request) -> JSONResponse:
        """List payouts to the business bank account, newest first."""
        return JSONResponse(sim.list_transfers(dict(request.query_params), _url_for(request)))

    @api.get("/transfers/{transfer_id}")
    async def get_transfer(transfer_id: str) -> JSONResponse:
        """Return one transfer (it does not list the charges it settles)."""
        return JSONResponse(sim.get_transfer(transfer_id))

    control = APIRouter(prefix="/_sandbox", tags=["sandbox"])

    @control.post("/payouts")
    async def payout() -> JSONResponse:
        """Pay out every available transaction as one transfer; 409 when none is available."""
        return JSONResponse(sim.payout())

    @control.get("/payouts/{transfer_id}/transactions")
    async def payout_transactions(transfer_id: str) -> JSONResponse:
        """Ground truth for tests: the transactions a transfer settled."""
        return JSONResponse(sim.payout_transactions(transfer_id))

    @control.post("/orders/{order_id}/pay")
    async def pay(order_id: str) -> JSONResponse:
        """Simulate the customer paying the order."""
        return JSONResponse(sim.pay_order(order_id))

    @control.post("/orders/{order_id}/expire")
    async def expire(order_id: str) -> JSONResponse:
        """Expire an unpaid order."""
        return JSONResponse(sim.expire_order(order_id))

    @control.post("/orders/{order_id}/cancel")
    async def cancel(order_id: str) -> JSONResponse:
        """Cancel an unpaid order."""
        return JSONResponse(sim.cancel_order(order_id))

    @control.post("/orders/{order_id}/refund")
    async def refund(order_id: str, request: Request) -> JSONResponse:
        """Refund `amount` cents of a paid order (default: the rest)."""
        body = await _json_body(request)
        amount = body.get("amount") if isinstance(body, dict) else None
        if amount is not None and not model.is_int(amount):
            raise InvalidParameters(
                details=[
                    ErrorDetail(
                        "conekta.errors.parameter_validation.amount.invalid",
                        "amount must be an integer number of cents.",
                        "El parámetro amount es inválido.",
                        "amount",
                    )
                ]
            )
        return JSONResponse(sim.refund_order(order_id, amount))

    @control.post("/orders/{order_id}/chargeback")
    async def chargeback(order_id: str) -> JSONResponse:
        """Record a chargeback on a paid order."""
        return JSONResponse(sim.chargeback_order(order_id))

    @control.post("/faults", status_code=201)
    async def add_fault(request: Request) -> JSONResponse:
        """Install a fault (drop, duplicate, reorder, delay, bad_signature, api_error)."""
        return JSONResponse(sim.add_fault(await _json_body(request)), status_code=201)

    @control.get("/faults")
    async def list_faults() -> JSONResponse:
        """List active faults."""
        return JSONResponse({"object": "list", "data": sim.list_faults()})

    @control.delete("/faults")
    async def clear_faults() -> JSONResponse:
        """Remove all faults, releasing any held events."""
        return JSONResponse(sim.clear_faults())

    @control.post("/faults/flush")
    async def flush_faults() -> JSONResponse:
        """Release events held by reorder faults, newest first."""
        return JSONResponse({"released": sim.flush_faults()})

    @control.get("/deliveries")
    async def deliveries() -> JSONResponse:
        """Return every delivery attempt."""
        return JSONResponse(jsonable_encoder(sim.deliveries()))

    @control.get("/public_key")
    async def public_key() -> PlainTextResponse:
        """Return the webhook signing public key as PEM."""
        return PlainTextResponse(sim.public_key_pem())

    app.include_router(api)
    app.include_router(control)
    return app
