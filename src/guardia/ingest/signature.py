"""Verification of Conekta's `DIGEST` webhook header against the company's RSA webhook keys.

Conekta signs each delivery with the company's webhook private key and sends the result, base64,
in `DIGEST`; the header carries no key id and no timestamp, and which of two constructions Conekta
really uses is unconfirmed (shared/docs/providers.md §1.1). Until a sandbox capture settles it we
accept either, try every active key for the endpoint's livemode, and report which branch matched
so the dead branch can be deleted later:

- "A":     RSASSA-PKCS1-v1_5 / SHA-256 signature over the raw body;
- "B-hex": PKCS#1 v1.5 type-1 "private encrypt" (no DigestInfo) of the lowercase hex SHA-256;
- "B-bin": the same construction over the 32-byte binary SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography import exceptions as crypto_exceptions
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from guardia.core.errors import InvalidInput, InvalidSignature

__all__ = ["ConektaKeyring", "Verification", "WebhookKey"]


@dataclass(frozen=True, slots=True)
class WebhookKey:
    """A Conekta webhook key (`POST /webhook_keys`): its id, public PEM, livemode and state."""

    key_id: str
    public_key_pem: str
    livemode: bool = False
    active: bool = True


@dataclass(frozen=True, slots=True)
class Verification:
    """Which key and which construction ("A", "B-hex" or "B-bin") verified a delivery."""

    key_id: str
    branch: str


class ConektaKeyring:
    """The set of webhook public keys one endpoint trusts; several may be active during rotation."""

    def __init__(self, keys: Iterable[WebhookKey]) -> None:
        entries: list[tuple[WebhookKey, RSAPublicKey]] = []
        seen: set[str] = set()
        for key in keys:
            if key.key_id in seen:
                raise InvalidInput(f"webhook key {key.key_id!r} is listed twice")
            seen.add(key.key_id)
            entries.append((key, _load_rsa_public_key(key)))
        self._entries = tuple(entries)

    @classmethod
    def from_pem_texts(cls, pems: Mapping[str, str], *, livemode: bool = False) -> ConektaKeyring:
        """Build a keyring of active keys, all for one livemode, from key id → PEM text."""
        return cls(
            WebhookKey(key_id=key_id, public_key_pem=pem, livemode=livemode, active=True)
            for key_id, pem in pems.items()
        )

    def active_keys(self, *, livemode: bool) -> list[WebhookKey]:
        """Return the active keys for one livemode, in the order they were given."""
        return [key for key, _ in self._active_entries(livemode)]

    def verify(self, body: bytes, digest_header: str | None, *, livemode: bool) -> Verification:
        """Verify `DIGEST` over the raw body bytes, or raise InvalidSignature with the reason."""
        signature = _decode_header(digest_header)
        entries = self._active_entries(livemode)
        if not entries:
            raise InvalidSignature(f"no active Conekta webhook key for livemode={livemode}")
        sha256 = hashlib.sha256(body)
        hex_digest = sha256.hexdigest().encode("ascii")
        binary_digest = sha256.digest()
        for key, public_key in entries:
            branch = _matching_branch(public_key, signature, body, hex_digest, binary_digest)
            if branch is not None:
                return Verification(key_id=key.key_id, branch=branch)
        raise InvalidSignature(
            f"DIGEST did not verify against any of {len(entries)} active key(s) "
            f"for livemode={livemode}"
        )

    def _active_entries(self, livemode: bool) -> list[tuple[WebhookKey, RSAPublicKey]]:
        return [
            (key, public_key)
            for key, public_key in self._entries
            if key.active and key.livemode == livemode
        ]


def _load_rsa_public_key(key: WebhookKey) -> RSAPublicKey:
    try:
        public_key = serialization.load_pem_public_key(key.public_key_pem.encode("utf-8"))
    except (ValueError, TypeError, crypto_exceptions.UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"webhook key {key.key_id!r} is not a PEM public key") from exc
    if not isinstance(public_key, RSAPublicKey):
        raise InvalidInput(f"webhook key {key.key_id!r} is not an RSA public key")
    return public_key


def _decode_header(digest_header: str | None) -> bytes:
    if digest_header is None:
        raise InvalidSignature("missing DIGEST header")
    value = digest_header.strip()
    if not value:
        raise InvalidSignature("empty DIGEST header")
    try:
        signature = base64.b64decode(value, validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise InvalidSignature("DIGEST is not strict base64") from exc
    # b64decode ignores the unused low bits of the last symbol, so "AR==" decodes like "AQ==";
    # insisting on the canonical encoding means any changed header character is a rejection.
    if base64.b64encode(signature) != value.encode("ascii"):
        raise InvalidSignature("DIGEST is not canonical base64")
    return signature


def _matching_branch(
    public_key: RSAPublicKey,
    signature: bytes,
    body: bytes,
    hex_digest: bytes,
    binary_digest: bytes,
) -> str | None:
    try:
        public_key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
    except crypto_exceptions.InvalidSignature:
        pass
    else:
        return "A"
    try:
        recovered = public_key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
    except (crypto_exceptions.InvalidSignature, ValueError):
        return None
    if hmac.compare_digest(recovered, hex_digest):
        return "B-hex"
    if hmac.compare_digest(recovered, binary_digest):
        return "B-bin"
    return None
