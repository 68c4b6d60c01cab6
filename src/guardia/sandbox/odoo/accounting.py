"""Journal entries: `account.move`, its lines, posting, names, and the reversal wizard.

Reproduces odoo.md §5 and the §10.3 validation table: balance compared in exact cents, the
misleading foreign-key text for a missing account, duplicate `ref` accepted, the first draft of a
period named at create and later drafts "/" until posted, "already posted" on a second post.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, Final

from guardia.sandbox.odoo.domain import Row
from guardia.sandbox.odoo.errors import AccessError, UserError, ValidationError
from guardia.sandbox.odoo.orm import (
    CENT,
    MXN_ID,
    BaseModel,
    money,
    not_simulated,
    rpc,
)

_DRAFT_LABELS: Final = {
    "entry": "Draft Entry",
    "out_invoice": "Draft Invoice",
    "out_refund": "Draft Credit Note",
    "in_invoice": "Draft Bill",
    "in_refund": "Draft Vendor Credit Note",
    "out_receipt": "Draft Sales Receipt",
    "in_receipt": "Draft Purchase Receipt",
}
_YEARLY_JOURNALS: Final = ("sale", "bank", "cash")
_NO_ACCOUNT_TYPES: Final = ("line_section", "line_note")
ZERO: Final = Decimal("0.00")


def format_amount(amount: Decimal) -> str:
    """Format MXN like `tools.format_amount`: symbol before, NO-BREAK SPACE, en_US grouping."""
    # odoo.md §4.2 prints "$ 1,160.00"; the source joins with U+00A0 (tools/misc.py).
    return f"$\u00a0{amount:,.2f}"


class AccountMoveLine(BaseModel):
    """account.move.line: written through `account.move.line_ids` only."""

    _name = "account.move.line"

    def _move(self, row: Row) -> Row:
        return self.env.db.tables["account.move"][row["move_id"]]

    def _compute_move_name(self, row: Row) -> Any:
        return self._move(row).get("name")

    def _compute_date(self, row: Row) -> Any:
        return self._move(row).get("date")

    def _compute_ref(self, row: Row) -> Any:
        return self._move(row).get("ref")

    def _compute_parent_state(self, row: Row) -> Any:
        return self._move(row).get("state")

    def _compute_journal_id(self, row: Row) -> Any:
        return self._move(row).get("journal_id")

    def _compute_company_id(self, row: Row) -> Any:
        return self._move(row).get("company_id")

    def _compute_reconciled(self, row: Row) -> bool:
        return False

    def _display_name(self, row: Row) -> str:
        move = self._move(row)
        name = str(move.get("name") or "")
        if move.get("ref"):
            name += f" ({move['ref']})"
        if row.get("name"):
            name += f" {row['name']}"
        return name

    def _sql_checks(self, row: Row) -> None:
        if row.get("display_type") not in _NO_ACCOUNT_TYPES and row.get("account_id") is None:
            # SQL constraint check_accountable_required_account (odoo.md §10.3).
            raise ValidationError(
                "The operation cannot be completed: Missing required account on accountable line."
            )

    def _line_row(self, move_id: int, vals: Any) -> Row:
        if not isinstance(vals, Mapping):
            raise not_simulated(f"a line_ids value of type {type(vals).__name__}")
        row = {"display_type": "product", "currency_id": MXN_ID, **self._convert(vals)}
        if "debit" in vals or "credit" in vals:
            balance = money(vals.get("debit")) - money(vals.get("credit"))
        else:
            balance = money(vals.get("balance"))
        # odoo.md §5.1: `balance` alone is allowed; debit and credit are computed from it.
        row["balance"] = balance
        row["debit"] = max(balance, ZERO)
        row["credit"] = max(-balance, ZERO)
        row["amount_currency"] = balance
        dist = row.get("analytic_distribution")
        if isinstance(dist, Mapping):
            # §5.2: read back as {"1": 100.0}; the ids are never checked.
            row["analytic_distribution"] = {str(k): float(v) for k, v in dist.items()}
        row["move_id"] = move_id
        return row

    def _insert_lines(self, rows: list[Row]) -> list[int]:
        """One INSERT of many rows: NOT NULL and CHECK per row, foreign keys at the end."""
        ids = []
        for row in rows:
            ids.append(self.env.db.next_id(self._name))
            self._not_null(row)
            self._sql_checks(row)
        for row in rows:
            self._foreign_keys(row)
        stamp = self.env.now_text()
        for rid, row in zip(ids, rows, strict=True):
            self.table[rid] = {"id": rid, **row, "create_date": stamp, "write_date": stamp}
        return ids

    def _create_one(self, vals: Mapping[str, Any]) -> int:
        raise not_simulated("creating journal items outside account.move line_ids")

    def _write_rows(self, rows: list[Row], vals: Mapping[str, Any]) -> None:
        raise not_simulated("writing journal items directly")

    def _unlink_row(self, row: Row) -> None:
        raise not_simulated("deleting journal items directly")


class AccountMove(BaseModel):
    """account.move of type `entry`: create, post, reset, cancel."""

    _name = "account.move"
    _defaults: ClassVar[dict[str, Any]] = {
        "move_type": "entry",
        "state": "draft",
        "auto_post": "no",
        "posted_before": False,
        "currency_id": MXN_ID,
    }
    _private = BaseModel._private | {
        "_post",
        "_reverse_moves",
        "_check_balanced",
        "_compute_name",
        "_get_last_sequence",
        "_set_next_sequence",
    }

    # --- computed values ---------------------------------------------------------------------

    def _lines(self, move_id: int) -> list[Row]:
        table = self.env.db.tables.get("account.move.line", {})
        return [table[k] for k in sorted(table) if table[k]["move_id"] == move_id]

    def _compute_line_ids(self, row: Row) -> list[int]:
        return [line["id"] for line in self._lines(row["id"])]

    def _compute_amount_total(self, row: Row) -> Decimal:
        # For entries, the sum of the debit lines (odoo.md §10.3: amount_total 1160.0).
        return sum((ln["debit"] for ln in self._lines(row["id"])), Decimal("0.00"))

    def _compute_amount_total_signed(self, row: Row) -> Decimal:
        return self._compute_amount_total(row)

    def _compute_amount_untaxed(self, row: Row) -> Decimal:
        return Decimal("0.00")

    def _compute_payment_state(self, row: Row) -> str:
        return "not_paid"

    def _display_name(self, row: Row) -> str:
        """Return `_get_move_display_name(show_ref=True)`: "Draft Entry (* 3) (unbal)"."""
        name = ""
        if row.get("state") == "draft":
            name += _DRAFT_LABELS.get(row.get("move_type") or "entry", "Draft Entry") + " "
        if not row.get("name") or row["name"] == "/":
            name += f"(* {row['id']})"
        else:
            name += str(row["name"])
        if row.get("ref"):
            name += f" ({textwrap.shorten(str(row['ref']), width=50)})"
        return name

    # --- sequence ----------------------------------------------------------------------------

    def _prefix(self, journal: Row, day: str) -> tuple[str, int]:
        """Return the name prefix and digits: `_get_starting_sequence` (odoo.md §5.1)."""
        if journal.get("type") in _YEARLY_JOURNALS:
            return f"{journal['code']}/{day[:4]}/", 5
        return f"{journal['code']}/{day[:4]}/{day[5:7]}/", 4

    def _last_number(
        self, journal: Row, day: str, exclude: int | None, *, snapshot: bool = False
    ) -> int | None:
        prefix, _ = self._prefix(journal, day)
        db = self.env.db
        numbers = [
            int(str(m["name"])[len(prefix) :])
            for m in self.table.values()
            if m["journal_id"] == journal["id"]
            and m["id"] != exclude
            and str(m.get("name") or "").startswith(prefix)
            and str(m["name"])[len(prefix) :].isdigit()
            and (not snapshot or db.visible(m))
        ]
        return max(numbers) if numbers else None

    def _next_name(
        self, journal: Row, day: str, exclude: int | None, *, snapshot: bool = False
    ) -> str:
        prefix, digits = self._prefix(journal, day)
        last = self._last_number(journal, day, exclude, snapshot=snapshot)
        return f"{prefix}{(last or 0) + 1:0{digits}d}"

    def _draft_name(self, row: Row) -> str:
        """Name a new draft: the first of its journal and period is numbered, later ones "/".

        16's `_compute_name` numbers a draft when `_get_last_sequence(lock=False)` finds no
        named move of the period [obs 16]. That read sees only what was committed when the
        transaction began, so drafts created at the same moment as the period's first all get
        its number (`CSH1/2026/00001`) and posting keeps it. 18 numbers only moves that are not
        drafts (`_compute_name`: `move.state != 'draft'`) [src]; 17 is taken to be 16's [inf].
        """
        if self.env.major >= 18:
            return "/"
        journal = self.env.db.tables.get("account.journal", {}).get(row.get("journal_id") or 0)
        if journal is None or not row.get("date"):
            return "/"
        if self._last_number(journal, row["date"], None, snapshot=True) is None:
            return self._next_name(journal, row["date"], None, snapshot=True)
        return "/"

    def _check_unique_names(self, rows: list[Row]) -> None:
        """`_check_unique_sequence_number`: two posted moves of a journal never share a name."""
        taken = [
            str(move["name"])
            for move in rows
            for other in self.table.values()
            if other["id"] != move["id"]
            and other["state"] == "posted"
            and other["journal_id"] == move["journal_id"]
            and other["move_type"] == move["move_type"]
            and other.get("name") == move.get("name")
        ]
        if taken:
            raise ValidationError(
                "Posted journal entry must have an unique sequence number per company.\n"
                f"Problematic numbers: {', '.join(dict.fromkeys(taken))}\n"
            )

    # --- create / write ----------------------------------------------------------------------

    def _create_one(self, vals: Mapping[str, Any]) -> int:
        vals = dict(vals)
        if vals.get("state") == "posted":
            raise UserError(
                "You cannot create a move already in the posted state. Please create a draft "
                "move and post it after."
            )
        commands = vals.pop("line_ids", None)
        row: Row = {**self._defaults, **self._convert(vals)}
        if row.get("move_type") != "entry":
            raise not_simulated(f"move_type {row.get('move_type')!r}")
        if not row.get("date"):
            row["date"] = self.env.today().isoformat()
        journal = self.env.db.tables.get("account.journal", {}).get(row.get("journal_id") or 0)
        row["company_id"] = journal.get("company_id", 1) if journal else 1
        if not row.get("name"):
            # A `name` given in vals, "/" included, protects the computed field: Odoo then
            # numbers the move only when it is posted.
            row["name"] = self._draft_name(row)
        self.env.db.stamp(row)
        # odoo.md §10.3: a missing journal_id is a NOT NULL violation turned ValidationError [src].
        move_id = self._insert(row)
        self._apply_line_commands(move_id, commands, creating=True)
        self._check_lines(move_id)
        return move_id

    def _apply_line_commands(self, move_id: int, commands: Any, *, creating: bool) -> None:
        if commands is None or commands is False:
            return
        if not isinstance(commands, list | tuple):
            raise not_simulated(f"line_ids given as {type(commands).__name__}")
        lines = AccountMoveLine(self.env, ())
        new_rows: list[Row] = []
        for command in commands:
            if not isinstance(command, list | tuple) or not command:
                raise not_simulated(f"line_ids command {command!r}")
            code = command[0]
            if code == 0 and len(command) == 3:
                new_rows.append(lines._line_row(move_id, command[2]))
            elif code == 5:
                for old in self._lines(move_id):
                    del lines.table[old["id"]]
            elif code in (1, 2, 3) and not creating and len(command) >= 2:
                line = lines.table.get(command[1])
                if line is None or line["move_id"] != move_id:
                    raise not_simulated(f"line_ids command on a foreign line {command!r}")
                if code == 1:
                    merged = {
                        k: v
                        for k, v in line.items()
                        if k in ("account_id", "partner_id", "name", "analytic_distribution")
                    }
                    updated = {**merged, **dict(command[2] if len(command) > 2 else {})}
                    if not {"debit", "credit", "balance"} & set(updated):
                        updated["balance"] = float(line["balance"])
                    del lines.table[line["id"]]
                    replacement = lines._line_row(move_id, updated)
                    lines._not_null(replacement)
                    lines._sql_checks(replacement)
                    lines._foreign_keys(replacement)
                    lines.table[line["id"]] = {**line, **replacement}
                else:
                    del lines.table[line["id"]]
            else:
                raise not_simulated(f"line_ids command {command!r}")
        if new_rows:
            lines._insert_lines(new_rows)

    def _check_lines(self, move_id: int) -> None:
        """Python constraints at flush: deprecated accounts, then `_check_balanced`."""
        accounts = self.env.db.tables.get("account.account", {})
        for line in self._lines(move_id):
            account = accounts.get(line.get("account_id") or 0)
            if account is None or line.get("display_type") in _NO_ACCOUNT_TYPES:
                continue
            if account.get("deprecated"):
                raise UserError(f"The account {account['name']} ({account['code']}) is deprecated.")
            if self.env.major >= 19 and account.get("active") is False:
                raise UserError(f"The account {account['name']} ({account['code']}) is archived.")
        self._check_balanced(move_id)

    def _check_balanced(self, move_id: int) -> None:
        lines = self._lines(move_id)
        total = sum((line["balance"] for line in lines), Decimal(0)).quantize(CENT)
        if total == 0:
            return
        move = self.table[move_id]
        debit = sum((line["debit"] for line in lines), Decimal(0))
        credit = sum((line["credit"] for line in lines), Decimal(0))
        journal = self.env.display_name("account.journal", move["journal_id"])
        raise UserError(
            "An error has occurred.\n\n"
            f"The move ({self._display_name(move)}) is not balanced.\n"
            f"The total of debits equals {format_amount(debit)} and the total of credits equals "
            f"{format_amount(credit)}.\n"
            f'You might want to specify a default account on journal "{journal}" to '
            "automatically balance each move."
        )

    def _write_rows(self, rows: list[Row], vals: Mapping[str, Any]) -> None:
        vals = dict(vals)
        commands = vals.pop("line_ids", None)
        for row in rows:
            if (
                "journal_id" in vals
                and row.get("posted_before")
                and vals["journal_id"] != row["journal_id"]
            ):
                raise UserError(
                    "You cannot edit the journal of an account move if it has been posted once."
                )
            if commands and row["state"] == "posted":
                raise not_simulated("editing the lines of a posted entry")
            if vals.get("state") == "posted" and row["state"] != "posted":
                raise not_simulated("posting through write(); call action_post")
        super()._write_rows(rows, vals)
        for row in rows:
            if commands:
                self._apply_line_commands(row["id"], commands, creating=False)
            self._check_lines(row["id"])

    def _unlink_row(self, row: Row) -> None:
        if row.get("posted_before") or row["state"] == "posted":
            raise UserError("You cannot delete an entry which has been posted once.")  # [inf]
        lines = AccountMoveLine(self.env, ()).table
        for line in self._lines(row["id"]):
            del lines[line["id"]]
        super()._unlink_row(row)

    # --- posting -----------------------------------------------------------------------------

    def _post_rows(self, rows: list[Row]) -> None:
        """`_post(soft=False)`: group check, then per-move checks, then numbering.

        Up to 17 the first failed check raises; 18 collects every message and changes the
        "already posted" text to "must be in draft" (addons/account/models/account_move.py).
        """
        if "account.group_account_invoice" not in self.env.groups():
            raise AccessError("You don't have the access rights to post an invoice.")
        accounts = self.env.db.tables.get("account.account", {})
        today = self.env.today().isoformat()
        collected: dict[str, None] = {}
        for move in rows:
            messages: list[str] = []
            if self.env.major >= 18 and move["state"] in ("posted", "cancel"):
                messages.append(f"The entry {move['name']} (id {move['id']}) must be in draft.")
            elif move["state"] == "posted":
                messages.append(f"The entry {move['name']} (id {move['id']}) is already posted.")
            lines = self._lines(move["id"])
            if not lines:
                messages.append(
                    "Even magicians can't post nothing!"
                    if self.env.major >= 19
                    else "You need to add a line before posting."
                )
            if move.get("auto_post", "no") != "no" and move["date"] > today:
                shown = f"{move['date'][5:7]}/{move['date'][8:10]}/{move['date'][:4]}"
                messages.append(f"This move is configured to be auto-posted on {shown}")
            own = self.env.db.tables.get("account.journal", {}).get(move["journal_id"])
            if own is not None and own.get("active") is False:
                messages.append(f"You cannot post an entry in an archived journal ({own['name']})")
            used = [accounts.get(line.get("account_id") or 0) or {} for line in lines]
            if any(account.get("deprecated") for account in used):
                messages.append(
                    "A line of this move is using a deprecated account, you cannot post it."
                )
            if messages and self.env.major <= 17:
                raise UserError(messages[0])
            collected.update(dict.fromkeys(messages))
        if collected:
            raise UserError("\n".join(collected))
        journals = self.env.db.tables.get("account.journal", {})
        for move in sorted(rows, key=lambda m: (m["date"], m.get("ref") or "", m["id"])):
            if not move.get("name") or move["name"] == "/":
                journal: Row | None = journals.get(move["journal_id"])
                if journal is None:
                    journal = self.env.db.row("account.journal", move["journal_id"])
                if journal is not None:
                    move["name"] = self._next_name(journal, move["date"], move["id"])
            move["state"] = "posted"
            move["posted_before"] = True
            move["write_date"] = self.env.now_text()
            self.env.db.stamp(move)
        self._check_unique_names(rows)

    @rpc()
    def action_post(self) -> bool:
        """Post the entries; returns False (odoo.md §5.3) and refuses an already posted one."""
        rows = self._strict_rows()
        if rows:
            self._post_rows(rows)
        return False

    @rpc()
    def button_draft(self) -> None:
        """Reset to draft; returns None, so JSON-RPC omits `result` (odoo.md §3.2)."""
        self._check_access("write")
        rows = self._strict_rows()
        if self.env.major >= 17 and any(r["state"] not in ("posted", "cancel") for r in rows):
            raise UserError("Only posted/cancelled journal entries can be reset to draft.")
        for row in rows:
            row["state"] = "draft"
            row["write_date"] = self.env.now_text()

    @rpc()
    def button_cancel(self) -> None:
        """Cancel drafts (posted ones are reset first); returns None."""
        self._check_access("write")
        rows = self._strict_rows()
        for row in rows:
            if row["state"] == "posted":
                row["state"] = "draft"
        if any(row["state"] != "draft" for row in rows):
            raise UserError("Only draft journal entry can be cancelled.")
        for row in rows:
            row["state"] = "cancel"
            row["auto_post"] = "no"
            row["write_date"] = self.env.now_text()

    # --- reversal ----------------------------------------------------------------------------

    def _reverse_one(self, move: Row, defaults: Row) -> int:
        """Create the reversed copy: every line's balance negated, `reversed_entry_id` set."""
        lines = [
            [
                0,
                0,
                {
                    "account_id": line.get("account_id"),
                    "partner_id": line.get("partner_id") or False,
                    "name": line.get("name") or False,
                    "balance": float(-line["balance"]),
                    "analytic_distribution": line.get("analytic_distribution") or False,
                },
            ]
            for line in self._lines(move["id"])
        ]
        vals = {
            "move_type": "entry",
            "partner_id": move.get("partner_id") or False,
            "line_ids": lines,
            **defaults,
        }
        new_id = self._create_one(vals)
        self.table[new_id]["reversed_entry_id"] = move["id"]
        return new_id

    def _copy_one(self, move: Row, day: str) -> int:
        """`copy_data`: same lines and header, no `ref` (copy=False), a new date."""
        lines = [
            [
                0,
                0,
                {
                    "account_id": line.get("account_id"),
                    "partner_id": line.get("partner_id") or False,
                    "name": line.get("name") or False,
                    "balance": float(line["balance"]),
                    "analytic_distribution": line.get("analytic_distribution") or False,
                },
            ]
            for line in self._lines(move["id"])
        ]
        return self._create_one(
            {
                "move_type": "entry",
                "journal_id": move["journal_id"],
                "partner_id": move.get("partner_id") or False,
                "date": day,
                "line_ids": lines,
            }
        )


class AccountMoveReversal(BaseModel):
    """account.move.reversal: the public, wizard-based way to reverse entries over RPC.

    16.0 has `refund_method`, whose `default_get` picks "cancel" for entries only when the
    context carries `active_model`/`active_ids`; over RPC without them it is "refund", and the
    reversal stays a draft. 17+ dropped the field and posts the reversal of an entry.
    """

    _name = "account.move.reversal"

    def _compute_move_type(self, row: Row) -> Any:
        table = self.env.db.tables["account.move"]
        moves = [table[i] for i in row.get("move_ids") or [] if i in table]
        if len(moves) == 1:
            return moves[0]["move_type"]
        invoice = any(m["move_type"] in ("in_invoice", "out_invoice") for m in moves)
        return "some_invoice" if invoice else None

    def _create_one(self, vals: Mapping[str, Any]) -> int:
        ctx = self.env.context
        active = ctx.get("active_ids") if ctx.get("active_model") == "account.move" else []
        active_rows = AccountMove(self.env, ()).browse(active or [])._strict_rows()
        if any(m["state"] != "posted" for m in active_rows):
            raise UserError("You can only reverse posted moves.")
        defaults: Row = {
            "company_id": active_rows[0]["company_id"] if active_rows else 1,
            "move_ids": [m["id"] for m in active_rows],
            "date": self.env.today().isoformat(),
        }
        if self.env.major == 16:
            entry = len(active_rows) == 1 and active_rows[0]["move_type"] == "entry"
            defaults["refund_method"] = "cancel" if len(active_rows) > 1 or entry else "refund"
            defaults["date_mode"] = "custom"
        row = {**defaults, **self._convert(vals)}
        missing = [
            i for i in row.get("move_ids") or [] if i not in self.env.db.tables["account.move"]
        ]
        rid = self._insert(row)
        if missing:
            # The m2m relation table is no model, so _as_validation_error says "Unknown".
            raise ValidationError(
                "The operation cannot be completed: another model requires the record being "
                "deleted. If possible, archive it instead.\n\n"
                "Model: Unknown (unknown)\n"
                "Constraint: account_move_reversal_move_move_id_fkey\n"
            )
        return rid

    def _reverse(self, is_modify: bool) -> dict[str, Any]:
        wizard = self._ensure_one()
        moves_model = AccountMove(self.env, ())
        moves = moves_model.browse(wizard.get("move_ids") or [])._strict_rows()
        today = self.env.today().isoformat()
        batches: tuple[list[tuple[Row, Row]], list[tuple[Row, Row]]] = ([], [])
        for move in moves:
            if self.env.major == 16 and wizard.get("date_mode") == "entry":
                day = move["date"]
            else:
                day = wizard.get("date") or today
            defaults: Row = {
                "ref": f"Reversal of: {move['name']}, {wizard['reason']}"
                if wizard.get("reason")
                else f"Reversal of: {move['name']}",
                "date": day,
                "journal_id": wizard.get("journal_id") or move["journal_id"],
                "auto_post": "at_date" if day > today else "no",
            }
            if self.env.major == 16:
                cancel = wizard.get("refund_method") in ("cancel", "modify")
            else:
                cancel = is_modify or self._compute_move_type(wizard) == "entry"
            cancel = cancel and defaults["auto_post"] == "no"
            batches[0 if cancel else 1].append((move, defaults))
        modify = wizard.get("refund_method") == "modify" if self.env.major == 16 else is_modify
        moves_model._check_access("create")
        redirect: list[int] = []
        for index, batch in enumerate(batches):
            created = [moves_model._reverse_one(move, defaults) for move, defaults in batch]
            if index == 0 and created:
                moves_model._post_rows([moves_model.table[i] for i in created])
            if modify:
                created = [
                    moves_model._copy_one(move, wizard.get("date") or move["date"])
                    for move, _ in batch
                ]
            redirect += created
        self.table[wizard["id"]]["new_move_ids"] = redirect
        action: dict[str, Any] = {
            "name": "Reverse Moves",
            "type": "ir.actions.act_window",
            "res_model": "account.move",
        }
        if len(redirect) == 1:
            action |= {
                "view_mode": "form",
                "res_id": redirect[0],
                "context": {"default_move_type": "entry"},
            }
        else:
            action |= {
                "view_mode": "list,form" if self.env.major >= 18 else "tree,form",
                "domain": [["id", "in", redirect]],
                "context": {"default_move_type": "entry"},
            }
        return action

    @rpc(name="reverse_moves", until=16)
    def reverse_moves_16(self) -> dict[str, Any]:
        """Reverse the wizard's moves (16: the `refund_method` decides) and return an action."""
        return self._reverse(False)

    @rpc(name="reverse_moves", since=17)
    def reverse_moves(self, is_modify: Any = False) -> dict[str, Any]:
        """Reverse the wizard's moves (17+: entries are posted) and return an action."""
        return self._reverse(bool(is_modify))
