"""Command line for the Conekta simulator: serve it, and drive it over HTTP.

Mounted by the lead as `guardia sandbox conekta ...`; also runnable as
`python -m guardia.sandbox.conekta_cli ...`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from guardia.sandbox.cli_support import call, emit_json, simulator_url
from guardia.sandbox.conekta.simulator import DEFAULT_API_KEY
from guardia.settings import Settings

TEST_CARD = "tok_test_visa_4242"  # Conekta's public test token (tarjetas de prueba)

app = typer.Typer(
    help="Drive the local Conekta simulator: create and pay orders, inject faults, see deliveries.",
    no_args_is_help=True,
)
console = Console()

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="GUARDIA_CONEKTA_SIM_URL",
        show_default=False,
        help="Simulator base URL (default: 127.0.0.1 on GUARDIA_SANDBOX_CONEKTA_PORT, 8101).",
    ),
]
KeyOption = Annotated[
    str,
    typer.Option(
        "--api-key",
        envvar="GUARDIA_CONEKTA_SIM_API_KEY",
        help="The simulator's private API key (Bearer); never GUARDIA_CONEKTA_API_KEY.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the raw JSON response.")]
OrderArg = Annotated[str, typer.Argument(help="Order id, e.g. ord_2yQ8nCk3vJ5dWx9Ra.")]


class Method(StrEnum):
    """Payment methods the simulator issues."""

    spei = "spei"
    oxxo = "oxxo"
    card = "card"


class FaultKind(StrEnum):
    """Fault kinds the simulator understands."""

    drop = "drop"
    duplicate = "duplicate"
    reorder = "reorder"
    delay = "delay"
    bad_signature = "bad_signature"
    api_error = "api_error"


def _conekta_refusal(response: httpx.Response, payload: Any) -> str:
    if isinstance(payload, dict) and payload.get("details"):
        first = payload["details"][0]
        return f"{payload.get('type')}: {first.get('debug_message') or first.get('message')}"
    return response.text


def _call(
    method: str, url: str | None, path: str, *, api_key: str | None = None, body: object = None
) -> Any:
    url = url or simulator_url(Settings().sandbox_conekta_port)
    headers = {"Accept": "application/vnd.conekta-v2.2.0+json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    return call(
        "simulator", method, url, path, body=body, headers=headers, refusal=_conekta_refusal
    )


def _reference(order: dict[str, Any]) -> str:
    method = order["charges"]["data"][0]["payment_method"]
    kind = method.get("object")
    if kind == "bank_transfer_payment":
        return f"CLABE {method['clabe']} ({method['bank']})"
    if kind == "cash_payment":
        return f"OXXO reference {method['reference']}"
    return f"{method.get('brand')} ****{method.get('last4')} auth {method.get('auth_code')}"


def _show_order(order: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(order)
        return
    console.print(
        f"[bold]{order['id']}[/bold] {order['payment_status']} "
        f"amount={order['amount']} refunded={order['amount_refunded']} {order['currency']}"
    )
    console.print(f"  {_reference(order)}")


@app.command("create-order")
def create_order(
    method: Annotated[Method, typer.Option("--method", help="Payment method.")] = Method.spei,
    amount: Annotated[int, typer.Option("--amount", min=1, help="Amount in cents.")] = 150000,
    name: Annotated[str, typer.Option("--name")] = "Ana López Hernández",
    email: Annotated[str, typer.Option("--email")] = "ana.lopez@example.mx",
    phone: Annotated[str, typer.Option("--phone")] = "+525512345678",
    test_card: Annotated[str, typer.Option("--token", help="Card test token.")] = TEST_CARD,
    url: UrlOption = None,
    api_key: KeyOption = DEFAULT_API_KEY,
    as_json: JsonOption = False,
) -> None:
    """Create an order and print its id and payment reference."""
    payment_method: dict[str, str] = {"type": method.value}
    if method is Method.card:
        payment_method["token_id"] = test_card
    body = {
        "currency": "MXN",
        "customer_info": {"name": name, "email": email, "phone": phone},
        "line_items": [{"name": "Pago sandbox", "unit_price": amount, "quantity": 1}],
        "charges": [{"payment_method": payment_method}],
    }
    _show_order(_call("POST", url, "/orders", api_key=api_key, body=body), as_json)


@app.command()
def pay(order_id: OrderArg, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Simulate the customer paying an order."""
    _show_order(_call("POST", url, f"/_sandbox/orders/{order_id}/pay"), as_json)


@app.command()
def expire(order_id: OrderArg, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Expire an unpaid order."""
    _show_order(_call("POST", url, f"/_sandbox/orders/{order_id}/expire"), as_json)


@app.command()
def cancel(order_id: OrderArg, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Cancel an unpaid order."""
    _show_order(_call("POST", url, f"/_sandbox/orders/{order_id}/cancel"), as_json)


@app.command()
def refund(
    order_id: OrderArg,
    amount: Annotated[
        int | None, typer.Option("--amount", min=1, help="Cents; default: the rest.")
    ] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Refund part or all of a paid order."""
    body = {} if amount is None else {"amount": amount}
    _show_order(_call("POST", url, f"/_sandbox/orders/{order_id}/refund", body=body), as_json)


@app.command()
def chargeback(order_id: OrderArg, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Record a chargeback on a paid order."""
    _show_order(_call("POST", url, f"/_sandbox/orders/{order_id}/chargeback"), as_json)


@app.command()
def fault(
    kind: Annotated[FaultKind, typer.Argument(help="Fault kind.")],
    order_id: Annotated[str | None, typer.Option("--order-id", help="Only this order.")] = None,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Events/calls hit.")] = None,
    delay: Annotated[float | None, typer.Option("--delay", min=0, help="Seconds.")] = None,
    status_code: Annotated[int | None, typer.Option("--status-code", min=400, max=599)] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Install a fault: drop, duplicate, reorder, delay, bad_signature or api_error."""
    body: dict[str, object] = {"kind": kind.value}
    for key, value in (
        ("order_id", order_id),
        ("count", count),
        ("delay_seconds", delay),
        ("status_code", status_code),
    ):
        if value is not None:
            body[key] = value
    created = _call("POST", url, "/_sandbox/faults", body=body)
    if as_json:
        emit_json(created)
        return
    scope = created["order_id"] or "all orders"
    remaining = "unlimited" if created["remaining"] is None else created["remaining"]
    console.print(f"Fault [bold]{created['id']}[/bold] {created['kind']} on {scope} ({remaining})")


@app.command("clear-faults")
def clear_faults(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Remove every fault, releasing held events."""
    result = _call("DELETE", url, "/_sandbox/faults")
    if as_json:
        emit_json(result)
        return
    console.print(f"Cleared {result['cleared']} fault(s); released {result['released']} event(s).")


@app.command()
def deliveries(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Show every webhook delivery attempt."""
    rows = _call("GET", url, "/_sandbox/deliveries")
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"Conekta simulator deliveries ({len(rows)})")
    for column in ("time (UTC)", "type", "event_id", "order_id", "kind", "#", "result", "sig"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = row["status_code"]
        ok = status is not None and 200 <= status < 300
        failure = str(status or row["error"])[:40]
        result = f"[green]{status}[/green]" if ok else f"[red]{failure}[/red]"
        table.add_row(
            str(row["attempted_at"])[11:19],
            str(row["type"]),
            str(row["event_id"]),
            str(row["order_id"] or "-"),
            str(row["kind"]),
            str(row["attempt"]),
            result,
            "ok" if row["signature_ok"] else "[red]bad[/red]",
        )
    console.print(table)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option("--port", show_default=False, help="Default: GUARDIA_SANDBOX_CONEKTA_PORT."),
    ] = None,
    webhook_url: Annotated[
        list[str] | None,
        typer.Option(
            "--webhook-url",
            envvar="GUARDIA_CONEKTA_SIM_WEBHOOK_URL",
            help="Webhook to register at start; repeatable.",
        ),
    ] = None,
    private_key_file: Annotated[
        Path | None,
        typer.Option(
            "--private-key-file",
            envvar="GUARDIA_CONEKTA_SIM_PRIVATE_KEY_FILE",
            exists=True,
            dir_okay=False,
            help="PEM RSA private key to sign with (generated when absent).",
        ),
    ] = None,
    api_key: KeyOption = DEFAULT_API_KEY,
) -> None:
    """Run the simulator (API + /_sandbox control endpoints) with uvicorn."""
    import uvicorn

    from guardia.sandbox.conekta import ConektaSimConfig, ConektaSimulator, create_app

    config = ConektaSimConfig(
        api_key=api_key,
        webhook_urls=list(webhook_url or []),
        private_key_pem=private_key_file.read_bytes() if private_key_file else None,
    )
    uvicorn.run(
        create_app(ConektaSimulator(config)),
        host=host,
        port=port or Settings().sandbox_conekta_port,
        ws="none",
    )


if __name__ == "__main__":
    app()
