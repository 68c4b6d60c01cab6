"""Master-data models: companies, currencies, partners, users, accounts, journals, analytics."""

from __future__ import annotations

from typing import Any, ClassVar

from guardia.sandbox.odoo.domain import Row
from guardia.sandbox.odoo.errors import ValidationError, python_error
from guardia.sandbox.odoo.orm import BaseModel, rpc


class ResCompany(BaseModel):
    """res.company."""

    _name = "res.company"


class ResCurrency(BaseModel):
    """res.currency."""

    _name = "res.currency"

    def _compute_decimal_places(self, row: Row) -> int:
        return 2 if row.get("rounding", 0.01) == 0.01 else 0


class ResPartner(BaseModel):
    """res.partner: looked up by `ref` or `vat`, created per customer (odoo.md §8.3 step 7)."""

    _name = "res.partner"
    _defaults: ClassVar[dict[str, Any]] = {"active": True, "type": "contact", "is_company": False}

    def _display_name(self, row: Row) -> str:
        name = row.get("name") or ""
        parent = row.get("parent_id")
        if parent:
            return f"{self.env.display_name('res.partner', parent)}, {name}"
        return str(name)

    def _compute_complete_name(self, row: Row) -> str:
        return self._display_name(row)

    def _sql_checks(self, row: Row) -> None:
        if row.get("type") == "contact" and not row.get("name"):
            # SQL constraint res_partner_check_name (base/models/res_partner.py).
            raise ValidationError("The operation cannot be completed: Contacts require a name")


class ResUsers(BaseModel):
    """res.users: `has_group` changes form across versions (odoo.md §8.2), and `context_get`."""

    _name = "res.users"

    def _compute_name(self, row: Row) -> str:
        partner = row.get("partner_id")
        return self.env.display_name("res.partner", partner) if partner else str(row["login"])

    def _compute_share(self, row: Row) -> bool:
        return False

    def _display_name(self, row: Row) -> str:
        return self._compute_name(row)

    def _user_has(self, uid: int, group_ext_id: Any) -> bool:
        if not isinstance(group_ext_id, str) or "." not in group_ext_id:
            raise python_error(
                "AssertionError", f"External ID '{group_ext_id}' must be fully qualified"
            )
        return group_ext_id in self.env.registry.groups_of(uid)

    @rpc("model", name="has_group", until=16)
    def has_group_16(self, group_ext_id: Any) -> bool:
        """Return whether the caller is in the group (16: `@api.model`, caller only)."""
        return self._user_has(self.env.uid, group_ext_id)

    @rpc("either", name="has_group", since=17, until=17)
    def has_group_17(self, group_ext_id: Any) -> bool:
        """Accept both forms on 17, which odoo.md §8.2 marks as not verified."""
        if self.ids:
            return self._user_has(self._ensure_one()["id"], group_ext_id)
        return self._user_has(self.env.uid, group_ext_id)

    @rpc(name="has_group", since=18)
    def has_group(self, group_ext_id: Any) -> bool:
        """Return whether this user is in the group (18+: a record method, `ensure_one`)."""
        return self._user_has(self._ensure_one()["id"], group_ext_id)

    @rpc("model")
    def context_get(self) -> dict[str, Any]:
        """Return the user's context: `{"lang": "en_US", "tz": false, "uid": 2}` (§10.2)."""
        row = self.table.get(self.env.uid, {})
        return {
            "lang": row.get("lang") or "en_US",
            "tz": row.get("tz") or False,
            "uid": self.env.uid,
        }


class AccountAccount(BaseModel):
    """account.account: display name `"<code> <name>"` (odoo.md §10.3)."""

    _name = "account.account"

    def _display_name(self, row: Row) -> str:
        return f"{row.get('code')} {row.get('name')}"


class AccountJournal(BaseModel):
    """account.journal."""

    _name = "account.journal"


class AccountAnalyticPlan(BaseModel):
    """account.analytic.plan."""

    _name = "account.analytic.plan"


class AccountAnalyticAccount(BaseModel):
    """account.analytic.account: read by id at start-up, since Odoo never checks the id (§5.2)."""

    _name = "account.analytic.account"
    _defaults: ClassVar[dict[str, Any]] = {"active": True}

    def _display_name(self, row: Row) -> str:
        name = str(row.get("name") or "")
        if row.get("code"):
            name = f"[{row['code']}] {name}"
        if row.get("partner_id"):
            name = f"{name} - {self.env.display_name('res.partner', row['partner_id'])}"
        return name

    def _compute_root_plan_id(self, row: Row) -> Any:
        plan = row.get("plan_id")
        while plan:
            parent = self.env.db.row("account.analytic.plan", plan)
            if not parent or not parent.get("parent_id"):
                return plan
            plan = parent["parent_id"]
        return None
