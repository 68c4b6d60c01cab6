"""Bearer tokens for the operator and PWA APIs: configured as SHA-256 hashes, each with a role.

Roles: `operator` may read and act; `auditor` may only read; `pwa` may only read order status.
Tokens are random strings with a recognisable prefix (`gdo_`, `gda_`, `gdp_`), shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from guardia.core.errors import Forbidden, InvalidInput, Unauthorized


class Role(StrEnum):
    """What a token may do."""

    OPERATOR = "operator"
    AUDITOR = "auditor"
    PWA = "pwa"


class Policy(StrEnum):
    """What a route requires. Every route declares one; an undeclared route is refused."""

    PUBLIC = "public"  # health probes and metrics
    WEBHOOK = "webhook"  # authenticated by the provider's signature, not a token
    PWA_READ = "pwa_read"  # order status: pwa, auditor or operator
    READ = "read"  # operator data: auditor or operator
    ACT = "act"  # changes state: operator only


ALLOWED: dict[Policy, frozenset[Role]] = {
    Policy.PWA_READ: frozenset({Role.PWA, Role.AUDITOR, Role.OPERATOR}),
    Policy.READ: frozenset({Role.AUDITOR, Role.OPERATOR}),
    Policy.ACT: frozenset({Role.OPERATOR}),
}
PREFIX = {Role.OPERATOR: "gdo_", Role.AUDITOR: "gda_", Role.PWA: "gdp_"}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling."""

    name: str
    role: Role


def hash_token(token: str) -> str:
    """Return the hex SHA-256 under which a token is configured."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(role: Role) -> str:
    """Mint a random token for a role."""
    return PREFIX[role] + secrets.token_urlsafe(32)


class TokenBook:
    """The configured token hashes."""

    def __init__(self, entries: list[tuple[str, Role, str]]) -> None:
        self._entries = entries

    @classmethod
    def parse(cls, spec: str) -> TokenBook:
        """Parse `name:role:sha256hex,...`; refuse malformed entries loudly."""
        entries: list[tuple[str, Role, str]] = []
        for raw in filter(None, (part.strip() for part in spec.split(","))):
            try:
                name, role, digest = raw.split(":")
                parsed_role = Role(role)
            except ValueError as exc:
                raise InvalidInput(
                    f"GUARDIA_API_TOKENS entry {raw[:20]!r}… is not name:role:sha256hex"
                ) from exc
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise InvalidInput(f"GUARDIA_API_TOKENS entry {name!r}: hash is not sha256 hex")
            entries.append((name, parsed_role, digest))
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str | None) -> Principal:
        """Find the principal of a bearer token (constant-time comparison of hashes)."""
        if not token:
            raise Unauthorized("a bearer token is required")
        digest = hash_token(token)
        found: Principal | None = None
        for name, role, expected in self._entries:
            if hmac.compare_digest(digest, expected):
                found = Principal(name, role)
        if found is None:
            raise Unauthorized("unknown token")
        return found

    def authorize(self, token: str | None, policy: Policy) -> Principal | None:
        """Check a request against a route policy; return the principal (None if public)."""
        if policy in (Policy.PUBLIC, Policy.WEBHOOK):
            return None
        principal = self.authenticate(token)
        if principal.role not in ALLOWED[policy]:
            raise Forbidden(f"role {principal.role} may not call a {policy} route")
        return principal
