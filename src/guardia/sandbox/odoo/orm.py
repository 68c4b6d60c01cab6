"""A small in-memory ORM with Odoo's public method signatures, ACL texts and constraint errors.

Public methods carry the real signatures (`search_read(domain=None, fields=None, offset=0, ...)`)
so a wrong call fails with Python's own TypeError text, as it does in Odoo (odoo.md §8.2:
"has_group() takes 2 positional arguments but 3 were given"). Each call runs in a transaction the
simulator rolls back on error, except id sequences, which PostgreSQL never rolls back.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar, Final, Self, TypeVar

from guardia.core.clock import Clock
from guardia.sandbox.odoo.domain import Evaluator, Row, parse_order, sort_rows
from guardia.sandbox.odoo.errors import (
    AccessError,
    MissingError,
    OdooError,
    ValidationError,
    python_error,
)
from guardia.sandbox.odoo.schema import Field, ModelSchema

CENT: Final = Decimal("0.01")
MXN_ID: Final = 33  # base.MXN in a fresh database

# Group external ids and the "<category>/<name>" form the ACL error lists them in (odoo.md §4.2
# shows "Invoicing/Billing" and "Technical/Analytic Accounting"; the others follow suit [inf]).
GROUP_NAMES: Final = {
    "base.group_user": "User types/Internal User",
    "base.group_partner_manager": "Extra Rights/Contact Creation",
    "base.group_system": "Administration/Settings",
    "base.group_erp_manager": "Administration/Access Rights",
    "account.group_account_invoice": "Invoicing/Billing",
    "account.group_account_readonly": "Invoicing/Show Accounting Features - Readonly",
    "account.group_account_user": "Invoicing/Show Full Accounting Features",
    "account.group_account_manager": "Invoicing/Billing Administrator",
    "analytic.group_analytic_accounting": "Technical/Analytic Accounting",
}
_INVOICE: Final[tuple[str, ...]] = ("account.group_account_invoice",)
_USER: Final[tuple[str, ...]] = ("base.group_user",)


def _acl(read: tuple[str, ...], others: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {"read": read, "write": others, "create": others, "unlink": others}


# model -> operation -> groups granting it (ir.model.access.csv of base, account and analytic;
# read access for internal users on journal entries is [inf]).
ACL: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "account.move": _acl(_USER, _INVOICE),
    "account.move.line": _acl(_USER, _INVOICE),
    "account.move.reversal": _acl(_INVOICE, _INVOICE),
    "account.account": _acl(_USER, ("account.group_account_manager",)),
    "account.journal": _acl(_USER, ("account.group_account_manager",)),
    "account.analytic.account": _acl(_USER, ("analytic.group_analytic_accounting",)),
    "account.analytic.plan": _acl(_USER, ("analytic.group_analytic_accounting",)),
    "res.partner": _acl(_USER, ("base.group_partner_manager",)),
    "res.users": _acl(_USER, ("base.group_erp_manager",)),
    "res.company": _acl(_USER, ("base.group_system",)),
    "res.currency": _acl(_USER, ("base.group_system",)),
}
_VERBS: Final = {"read": "access", "write": "modify", "create": "create", "unlink": "delete"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def money(value: Any) -> Decimal:
    """Convert a float field value like the ORM (`float(value or 0.0)`), then to exact cents."""
    number = float(value or 0.0)
    # repr() is the shortest string that round-trips, so 1160.1 stays 1160.1, not 1160.0999...
    return Decimal(repr(number)).quantize(CENT, rounding=ROUND_HALF_UP)


def not_simulated(what: str) -> OdooError:
    """Say plainly that the simulator does not implement something real Odoo does."""
    return python_error("NotImplementedError", f"guardia odoo sandbox: {what} is not simulated")


@dataclass(frozen=True)
class RpcMeta:
    """How a model method is exposed: its public name, call style and versions."""

    name: str
    api: str  # "model", "model_create", "multi" or "either" (17's has_group, odoo.md §8.2)
    since: int
    until: int

    def serves(self, major: int) -> bool:
        """Return whether the method exists in Odoo `major`."""
        return self.since <= major <= self.until


F = TypeVar("F", bound=Callable[..., Any])


def rpc(
    api: str = "multi", *, name: str | None = None, since: int = 16, until: int = 99
) -> Callable[[F], F]:
    """Expose a method over RPC; its Python signature is the one clients bind against."""

    def mark(fn: F) -> F:
        public = name or str(getattr(fn, "__name__", ""))
        # Python's TypeError texts use __qualname__: make them read "create() takes ...".
        setattr(fn, "__name__", public)  # noqa: B010
        setattr(fn, "__qualname__", public)  # noqa: B010
        setattr(fn, "_rpc", RpcMeta(public, api, since, until))  # noqa: B010
        return fn

    return mark


# How many commits the current request's transaction sees. Odoo runs every request at REPEATABLE
# READ (odoo/sql_db.py), so a transaction reads what was committed when it began, not what a
# concurrent one commits meanwhile; None (a direct Python call) sees everything.
TRANSACTION_SNAPSHOT: ContextVar[int | None] = ContextVar("odoo_sim_snapshot", default=None)
# The key under which a row remembers the commit that made it visible (never a field).
COMMITTED_AT: Final = "__committed_at"


@dataclass
class Database:
    """Every table, the rows removed by fault knobs, and the non-transactional id sequences."""

    tables: dict[str, dict[int, Row]]
    sequences: dict[str, int]
    tombstones: dict[str, dict[int, Row]] = field(default_factory=dict)
    commits: int = 0

    def begin(self) -> None:
        """Start the current request's transaction: it sees the commits made so far."""
        TRANSACTION_SNAPSHOT.set(self.commits)

    def stamp(self, row: Row) -> None:
        """Mark a row as written by the transaction now running (visible once it commits)."""
        row[COMMITTED_AT] = self.commits + 1

    def visible(self, row: Row) -> bool:
        """Whether the running transaction sees the row: committed before it began, or its own."""
        snapshot = TRANSACTION_SNAPSHOT.get()
        written = int(row.get(COMMITTED_AT, 0))
        return snapshot is None or written <= snapshot or written == self.commits + 1

    def next_id(self, model: str) -> int:
        """Consume the next id, as `nextval()` does even when the INSERT then fails."""
        value = self.sequences.get(model, 1)
        self.sequences[model] = value + 1
        return value

    def snapshot(self) -> tuple[dict[str, dict[int, Row]], dict[str, dict[int, Row]]]:
        """Return a copy of the transactional state."""
        return copy.deepcopy(self.tables), copy.deepcopy(self.tombstones)

    def rollback(self, snap: tuple[dict[str, dict[int, Row]], dict[str, dict[int, Row]]]) -> None:
        """Restore a snapshot (sequences keep moving, like PostgreSQL's)."""
        self.tables, self.tombstones = snap

    def row(self, model: str, rid: int) -> Row | None:
        """Return a live row or a removed one (for names of old references)."""
        table = self.tables.get(model, {})
        if rid in table:
            return table[rid]
        return self.tombstones.get(model, {}).get(rid)


@dataclass
class Registry:
    """What every environment shares: the database, schemas, version, clock and groups."""

    db: Database
    schemas: dict[str, ModelSchema]
    major: int
    clock: Clock
    groups_of: Callable[[int], frozenset[str]]


class Env:
    """The ORM environment of one call: user, context and the model registry."""

    def __init__(self, registry: Registry, uid: int, context: Mapping[str, Any] | None = None):
        self.registry = registry
        self.uid = uid
        self.context: dict[str, Any] = dict(context or {})

    @property
    def major(self) -> int:
        """Return the Odoo major version."""
        return self.registry.major

    @property
    def db(self) -> Database:
        """Return the database."""
        return self.registry.db

    def __getitem__(self, model: str) -> BaseModel:
        cls = MODEL_CLASSES.get(model)
        if cls is None or model not in self.registry.schemas:
            raise KeyError(model)
        return cls(self, ())

    def __contains__(self, model: object) -> bool:
        return model in self.registry.schemas and model in MODEL_CLASSES

    def with_context(self, context: Mapping[str, Any] | None) -> Env:
        """Return the same environment with another context."""
        return Env(self.registry, self.uid, {**self.context, **dict(context or {})})

    def groups(self) -> frozenset[str]:
        """Return the groups of the current user."""
        return self.registry.groups_of(self.uid)

    def today(self) -> date:
        """Return `fields.Date.context_today`: the bot has tz false, so UTC (odoo.md §10.2)."""
        return self.registry.clock.now().astimezone(UTC).date()

    def now_text(self) -> str:
        """Return the current UTC time as Odoo writes datetimes."""
        return self.registry.clock.now().astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

    # --- domain.Source -----------------------------------------------------------------------

    def schema(self, model: str) -> ModelSchema:
        """Return a model's schema."""
        return self.registry.schemas[model]

    def raw(self, model: str, row: Row, fname: str) -> Any:
        """Return a field's raw value."""
        return self[model]._raw(row, fname)

    def live_rows(self, model: str) -> list[Row]:
        """Return every live row of a model, in id order."""
        table = self.db.tables.get(model, {})
        return [table[k] for k in sorted(table)]

    def display_name(self, model: str, rid: int) -> str:
        """Return a record's display name, even for a removed record."""
        row = self.db.row(model, rid)
        if row is None:
            return f"{model},{rid}"
        return self[model]._display_name(row)


MODEL_CLASSES: dict[str, type[BaseModel]] = {}


class BaseModel:
    """A recordset: a model and ids, with the ORM's public methods."""

    _name: ClassVar[str] = ""
    _defaults: ClassVar[dict[str, Any]] = {}
    # Private methods that exist, for the 18+ "Private methods (such as 'm._x')" AccessError.
    _private: ClassVar[frozenset[str]] = frozenset(
        {"_search", "_read_group", "_create", "_write", "_read", "_compute_display_name"}
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls._name:
            MODEL_CLASSES[cls._name] = cls

    def __init__(self, env: Env, ids: Iterable[Any] = ()) -> None:
        self.env = env
        self.ids: tuple[Any, ...] = tuple(ids)

    def __repr__(self) -> str:
        return f"{self._name}{self.ids!r}"

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def public_method(cls, name: str, major: int) -> tuple[Callable[..., Any], RpcMeta] | None:
        """Return the function and exposure of a public method in Odoo `major`, if any."""
        for klass in cls.__mro__:
            for fn in vars(klass).values():
                meta = getattr(fn, "_rpc", None)
                if isinstance(meta, RpcMeta) and meta.name == name and meta.serves(major):
                    return fn, meta
        return None

    @property
    def schema(self) -> ModelSchema:
        """Return the model's schema."""
        return self.env.schema(self._name)

    @property
    def table(self) -> dict[int, Row]:
        """Return the model's live rows by id."""
        return self.env.db.tables.setdefault(self._name, {})

    def browse(self, ids: Any) -> Self:
        """Return a recordset, converting ids like `BaseModel.browse` (16.0)."""
        if not ids:
            return type(self)(self.env, ())
        if isinstance(ids, int) and not isinstance(ids, bool):
            return type(self)(self.env, (ids,))
        if isinstance(ids, Iterable):
            return type(self)(self.env, tuple(ids))
        return type(self)(self.env, (ids,))

    def with_env(self, env: Env) -> Self:
        """Return the same records in another environment."""
        return type(self)(env, self.ids)

    def _rows(self) -> list[Row]:
        """Return the rows that exist, in the recordset's order."""
        table = self.table
        return [table[i] for i in self.ids if isinstance(i, int) and i in table]

    def _strict_rows(self) -> list[Row]:
        """Return every row, or raise MissingError as `check_access_rule` does."""
        for rid in self.ids:
            if not isinstance(rid, int) or isinstance(rid, bool):
                raise python_error("ValueError", f"Invalid id {rid!r} for {self._name}")
        missing = tuple(i for i in self.ids if i not in self.table)
        if missing:
            raise MissingError(
                "Record does not exist or has been deleted.\n"
                f"(Record: {self._name}{missing!r}, User: {self.env.uid})"
            )
        return self._rows()

    def _ensure_one(self) -> Row:
        if len(self.ids) != 1:
            raise python_error("ValueError", f"Expected singleton: {self!r}")
        return self._strict_rows()[0]

    # --- values ------------------------------------------------------------------------------

    def _raw(self, row: Row, fname: str) -> Any:
        """Return a stored or computed value (ids for relations, Decimal for money)."""
        compute = getattr(self, f"_compute_{fname}", None)
        if compute is not None:
            return compute(row)
        fdef = self.schema.fields.get(fname)
        if fdef is not None and fdef.type in ("one2many", "many2many"):
            return list(row.get(fname) or [])
        return row.get(fname)

    def _compute_display_name(self, row: Row) -> str:
        return self._display_name(row)

    def _display_name(self, row: Row) -> str:
        """Return the record's display name (`_rec_name` is `name` when the model has one)."""
        name = row.get("name")
        return str(name) if name else f"{self._name},{row['id']}"

    def _render(self, row: Row, fname: str, load: Any) -> Any:
        fdef = self.schema.fields[fname]
        value = self._raw(row, fname)
        if fdef.type == "many2one":
            if not value:
                return False
            if load != "_classic_read" or fdef.relation is None:
                return value
            return [value, self.env.display_name(fdef.relation, value)]
        if fdef.type in ("one2many", "many2many"):
            return list(value or [])
        if value is None:
            return False
        if isinstance(value, Decimal):
            return float(value)
        if isinstance(value, dict | list):
            return copy.deepcopy(value)
        return value

    def _sort_key(self, row: Row, fname: str) -> Any:
        fdef = self.schema.fields[fname]
        value = self._raw(row, fname)
        if value is None or (value is False and fdef.type != "boolean"):
            return None
        if fdef.type == "many2one" and fdef.relation is not None:
            return self.env.display_name(fdef.relation, value)
        if fdef.type in ("one2many", "many2many"):
            return None
        return value

    # --- access --------------------------------------------------------------------------------

    def _allowed(self, operation: str) -> bool:
        groups = ACL.get(self._name, {}).get(operation, _USER)
        return bool(self.env.groups() & set(groups))

    def _check_access(self, operation: str) -> None:
        """Raise the ACL AccessError of `ir.model.access.check` (odoo.md §4.2)."""
        if self._allowed(operation):
            return
        groups = ACL.get(self._name, {}).get(operation, _USER)
        listed = "\n".join(f"\t- {GROUP_NAMES.get(g, g)}" for g in groups)
        raise AccessError(
            f"You are not allowed to {_VERBS[operation]} '{self.schema.description}' "
            f"({self._name}) records.\n\n"
            f"This operation is allowed for the following groups:\n{listed}\n\n"
            "Contact your administrator to request access if necessary."
        )

    # --- writing -------------------------------------------------------------------------------

    def _field(self, fname: object) -> Field:
        fdef = self.schema.fields.get(fname) if isinstance(fname, str) else None
        if fdef is None:
            raise python_error("ValueError", f"Invalid field {fname!r} on model {self._name!r}")
        return fdef

    def _convert(self, vals: Mapping[str, Any]) -> Row:
        """Convert written values like each field's `convert_to_cache`, refusing unknown fields."""
        out: Row = {}
        for fname, value in vals.items():
            fdef = self._field(fname)
            if fdef.computed or fname in ("id", "create_date", "write_date", "display_name"):
                continue  # a computed field without inverse is silently ignored
            out[fname] = self._convert_value(fdef, value)
        return out

    def _convert_value(self, fdef: Field, value: Any) -> Any:
        label = f"{self._name}.{fdef.name}"
        if fdef.type == "boolean":
            return bool(value)
        if fdef.type in ("float", "monetary"):
            return money(value) if fdef.type == "monetary" else float(value or 0.0)
        if fdef.type == "integer":
            return int(value or 0)
        if fdef.type == "json":
            return copy.deepcopy(value) if value is not None and value is not False else None
        if value is None or value is False:
            return [] if fdef.type in ("one2many", "many2many") else None
        if fdef.type == "many2one":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, list | tuple) and value and isinstance(value[0], int):
                return value[0]
            raise python_error("ValueError", f"Wrong value for {label}: {value!r}")
        if fdef.type == "many2many":
            return self._m2m_commands(label, value)
        if fdef.type == "one2many":
            raise not_simulated(f"writing one2many {label}")
        if fdef.type == "selection":
            allowed = {key for key, _ in fdef.selection or ()}
            if value not in allowed:
                raise python_error("ValueError", f"Wrong value for {label}: {value!r}")
            return value
        if fdef.type == "date":
            return to_date(value)
        return str(value)

    def _m2m_commands(self, label: str, value: Any) -> list[int]:
        if not isinstance(value, list | tuple):
            raise python_error("ValueError", f"Wrong value for {label}: {value!r}")
        ids: list[int] = []
        for cmd in value:
            if isinstance(cmd, int) and not isinstance(cmd, bool):
                ids.append(cmd)
            elif isinstance(cmd, list | tuple) and cmd and cmd[0] == 6 and len(cmd) == 3:
                ids = [int(i) for i in cmd[2]]
            elif isinstance(cmd, list | tuple) and cmd and cmd[0] == 4 and len(cmd) >= 2:
                ids.append(int(cmd[1]))
            elif isinstance(cmd, list | tuple) and cmd and cmd[0] == 3 and len(cmd) >= 2:
                ids = [i for i in ids if i != cmd[1]]
            elif isinstance(cmd, list | tuple) and cmd and cmd[0] == 5:
                ids = []
            else:
                raise python_error("ValueError", f"Wrong value for {label}: {value!r}")
        return list(dict.fromkeys(ids))

    def _not_null(self, row: Row) -> None:
        for fdef in self.schema.fields.values():
            if (
                fdef.required
                and fdef.store
                and not fdef.computed
                and fdef.type
                not in (
                    "one2many",
                    "many2many",
                )
            ):
                if row.get(fdef.name) is None:
                    # service/model.py _as_validation_error, NOT NULL branch (odoo.md §10.3).
                    raise ValidationError(
                        "The operation cannot be completed:\n"
                        "- Create/update: a mandatory field is not set.\n"
                        "- Delete: another model requires the record being deleted. "
                        "If possible, archive it instead.\n\n"
                        f"Model: {self.schema.description} ({self._name})\n"
                        f"Field: {fdef.string} ({fdef.name})\n"
                    )

    def _foreign_keys(self, row: Row) -> None:
        for fdef in self.schema.fields.values():
            value = row.get(fdef.name)
            if fdef.type != "many2one" or value is None or fdef.relation is None:
                continue
            if value not in self.env.db.tables.get(fdef.relation, {}):
                # An IntegrityError turned into this misleading text (odoo.md §4.2).
                raise ValidationError(
                    "The operation cannot be completed: another model requires the record being "
                    "deleted. If possible, archive it instead.\n\n"
                    f"Model: {self.schema.description} ({self._name})\n"
                    f"Constraint: {self.schema.table}_{fdef.name}_fkey\n"
                )

    def _sql_checks(self, row: Row) -> None:
        """Raise for a violated SQL CHECK constraint (checked per row, before foreign keys)."""

    def _insert(self, row: Row) -> int:
        """INSERT a row: take the id first, then NOT NULL and foreign-key checks."""
        rid = self.env.db.next_id(self._name)
        self._not_null(row)
        self._sql_checks(row)
        self._foreign_keys(row)
        stamp = self.env.now_text()
        row = {"id": rid, **row, "create_date": stamp, "write_date": stamp}
        self.table[rid] = row
        return rid

    def _create_one(self, vals: Mapping[str, Any]) -> int:
        row = {**copy.deepcopy(self._defaults), **self._convert(vals)}
        return self._insert(row)

    def _write_rows(self, rows: list[Row], vals: Mapping[str, Any]) -> None:
        converted = self._convert(vals)
        for row in rows:
            updated = {**row, **converted}
            self._not_null(updated)
            self._sql_checks(updated)
            self._foreign_keys(updated)
            row.update(converted)
            row["write_date"] = self.env.now_text()

    # --- public methods ------------------------------------------------------------------------

    def _search_rows(
        self, domain: Any, offset: Any = 0, limit: Any = None, order: Any = None
    ) -> list[Row]:
        self._check_access("read")
        active_test = self.env.context.get("active_test", True) is not False
        rows = Evaluator(self.env, active_test=active_test).search(self._name, domain)
        rows = sort_rows(rows, parse_order(self.schema, order), self._sort_key)
        start = int(offset or 0)
        end = None if limit is None or limit is False else start + int(limit)
        return rows[start:end]

    @rpc("model", name="search", until=16)
    def search_16(
        self, domain: Any, offset: Any = 0, limit: Any = None, order: Any = None, count: Any = False
    ) -> Any:
        """Return the matching records (or their count, until 16)."""
        rows = self._search_rows(domain, offset, limit, order)
        if count:
            return len(rows)
        return self.browse([r["id"] for r in rows])

    @rpc("model", name="search", since=17)
    def search(self, domain: Any, offset: Any = 0, limit: Any = None, order: Any = None) -> Any:
        """Return the matching records."""
        return self.browse([r["id"] for r in self._search_rows(domain, offset, limit, order)])

    @rpc("model")
    def search_count(self, domain: Any, limit: Any = None) -> int:
        """Return how many records match."""
        return len(self._search_rows(domain, 0, limit, "id"))

    @rpc("model")
    def search_read(
        self,
        domain: Any = None,
        fields: Any = None,
        offset: Any = 0,
        limit: Any = None,
        order: Any = None,
        **read_kwargs: Any,
    ) -> list[dict[str, Any]]:
        """Search then read; rows always include `id` (odoo.md §10.3)."""
        rows = self._search_rows(domain or [], offset, limit, order)
        if not rows:
            return []
        found = self.browse([r["id"] for r in rows])
        if fields and list(fields) == ["id"]:
            return [{"id": r["id"]} for r in rows]
        result: list[dict[str, Any]] = BaseModel.read(found, fields, **read_kwargs)
        return result

    @rpc()
    def read(self, fields: Any = None, load: Any = "_classic_read") -> list[dict[str, Any]]:
        """Read fields of the records that exist; missing ids are skipped (odoo.md §4.2)."""
        self._check_access("read")
        if fields:
            names = [self._field(f).name for f in fields]
        else:
            names = [f for f in self.schema.fields if f != "id"]
        names = [n for n in names if n != "id"]
        out: list[dict[str, Any]] = []
        for rid in self.ids:
            if not isinstance(rid, int) or rid not in self.table:
                continue
            row = self.table[rid]
            vals: dict[str, Any] = {"id": rid}
            for fname in names:
                vals[fname] = self._render(row, fname, load)
            out.append(vals)
        return out

    @rpc("model_create")
    def create(self, vals_list: Any) -> Any:
        """Create one record from a dict, or several from a list of dicts."""
        items = [vals_list] if isinstance(vals_list, Mapping) else vals_list
        if not isinstance(items, list | tuple) or not all(isinstance(v, Mapping) for v in items):
            raise python_error("TypeError", f"'{type(vals_list).__name__}' object is not a mapping")
        self._check_access("create")
        return self.browse([self._create_one(vals) for vals in items])

    @rpc()
    def write(self, vals: Any) -> bool:
        """Update the records; a missing id raises MissingError (odoo.md §4.2)."""
        if not isinstance(vals, Mapping):
            raise python_error(
                "AttributeError", f"'{type(vals).__name__}' object has no attribute 'items'"
            )
        self._check_access("write")
        self._write_rows(self._strict_rows(), vals)
        return True

    @rpc()
    def unlink(self) -> bool:
        """Delete the records."""
        self._check_access("unlink")
        for row in self._strict_rows():
            self._unlink_row(row)
        return True

    def _unlink_row(self, row: Row) -> None:
        del self.table[row["id"]]

    @rpc()
    def exists(self) -> Any:
        """Return the subset of records that exist."""
        return self.browse([r["id"] for r in self._rows()])

    @rpc("model")
    def fields_get(self, allfields: Any = None, attributes: Any = None) -> dict[str, Any]:
        """Describe the fields, as the client should check them across versions (odoo.md §7.3)."""
        names = list(allfields) if allfields else list(self.schema.fields)
        out: dict[str, Any] = {}
        for fname in names:
            fdef = self.schema.fields.get(fname)
            if fdef is None:
                continue
            desc = fdef.describe()
            if attributes:
                desc = {k: v for k, v in desc.items() if k in attributes}
            out[fname] = desc
        return out

    @rpc("model", until=18)
    def check_access_rights(self, operation: Any, raise_exception: Any = True) -> bool:
        """Return whether the user may do `operation` on the model (odoo.md §8.2)."""
        if operation not in _VERBS:
            raise python_error("AssertionError", "Invalid access mode")
        if raise_exception:
            self._check_access(operation)
            return True
        return self._allowed(operation)

    @rpc(since=18)
    def has_access(self, operation: Any) -> bool:
        """Return whether the user may do `operation` on these records (18+, odoo.md §8.2)."""
        if operation not in _VERBS:
            raise python_error("ValueError", f"Invalid access mode {operation!r}")
        return self._allowed(operation)


def to_date(value: Any) -> str:
    """Parse a date like `fields.Date.to_date`: the first 10 characters, `%Y-%m-%d`."""
    if isinstance(value, date | datetime):
        return value.strftime("%Y-%m-%d")
    text = str(value)[:10]
    if not _DATE.match(text):
        raise python_error("ValueError", f"time data {text!r} does not match format '%Y-%m-%d'")
    try:
        date.fromisoformat(text)
    except ValueError as exc:
        raise python_error("ValueError", str(exc)) from None
    return text
