"""Conekta `DIGEST` verification: the shared vectors, key rotation, livemode and mutations."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from guardia.core.errors import InvalidInput, InvalidSignature
from guardia.ingest.signature import ConektaKeyring, Verification, WebhookKey
from tests.conftest import shared_dir

VECTORS: dict[str, Any] = json.loads(
    (shared_dir() / "fixtures" / "providers" / "conekta" / "signature_vectors.json").read_text(
        encoding="utf-8"
    )
)
CASES: list[dict[str, Any]] = VECTORS["cases"]
# The vectors name the branches in prose; the verifier reports short codes.
FIXTURE_BRANCHES = {"A": "A", "B": "B-hex", "B (binary digest)": "B-bin"}


def _body(name: str) -> bytes:
    return base64.b64decode(VECTORS["bodies_b64"][name])


@functools.cache
def _private_key(label: str) -> rsa.RSAPrivateKey:
    """One 2048-bit test key per label, generated once per test module."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def _private_encrypt(key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    """PHP's openssl_private_encrypt: PKCS#1 v1.5 type-1 padding, no DigestInfo, raw RSA."""
    numbers = key.private_numbers()
    modulus = numbers.public_numbers.n
    size = (modulus.bit_length() + 7) // 8
    encoded = b"\x00\x01" + b"\xff" * (size - 3 - len(message)) + b"\x00" + message
    return pow(int.from_bytes(encoded, "big"), numbers.d, modulus).to_bytes(size, "big")


def _sign(key: rsa.RSAPrivateKey, body: bytes, branch: str) -> str:
    if branch == "A":
        raw = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    elif branch == "B-hex":
        raw = _private_encrypt(key, hashlib.sha256(body).hexdigest().encode("ascii"))
    else:
        raw = _private_encrypt(key, hashlib.sha256(body).digest())
    return base64.b64encode(raw).decode("ascii")


def _keyring(*labels: str, livemode: bool = False) -> ConektaKeyring:
    return ConektaKeyring(
        WebhookKey(label, _public_pem(_private_key(label)), livemode=livemode) for label in labels
    )


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_every_shared_vector_is_accepted_or_rejected_as_recorded(case: dict[str, Any]) -> None:
    keyring = ConektaKeyring.from_pem_texts(
        {name: VECTORS["public_keys_pem"][name] for name in case["keys"]}
    )
    body = _body(case["body"])

    if case["expect"]:
        verification = keyring.verify(body, case["digest"], livemode=False)
        assert verification.key_id == "key_1"
        if "branch" in case:
            assert verification.branch == FIXTURE_BRANCHES[case["branch"]]
    else:
        with pytest.raises(InvalidSignature):
            keyring.verify(body, case["digest"], livemode=False)


def test_the_shared_raw_body_hashes_to_the_recorded_digest() -> None:
    assert hashlib.sha256(_body("raw")).hexdigest() == VECTORS["raw_body_sha256_hex"]


def test_a_missing_header_is_rejected_with_a_reason() -> None:
    keyring = ConektaKeyring.from_pem_texts({"key_1": VECTORS["public_keys_pem"]["key_1"]})

    with pytest.raises(InvalidSignature, match="missing DIGEST"):
        keyring.verify(_body("raw"), None, livemode=False)


def test_a_whitespace_only_header_is_rejected_as_empty() -> None:
    keyring = ConektaKeyring.from_pem_texts({"key_1": VECTORS["public_keys_pem"]["key_1"]})

    with pytest.raises(InvalidSignature, match="empty DIGEST"):
        keyring.verify(_body("raw"), " \t ", livemode=False)


def test_a_header_with_inner_whitespace_or_urlsafe_alphabet_is_not_strict_base64() -> None:
    key = _private_key("strict")
    body = b'{"id":"evt"}'
    header = _sign(key, body, "A")
    keyring = _keyring("strict")
    raw = base64.b64decode(header)

    for bad in (header[:40] + " " + header[40:], base64.urlsafe_b64encode(raw).decode()):
        if bad == header:
            continue
        with pytest.raises(InvalidSignature):
            keyring.verify(body, bad, livemode=False)


def test_every_self_signed_branch_is_reported_by_name() -> None:
    keyring = _keyring("branches")
    body = b'{"type":"order.paid"}'

    for branch in ("A", "B-hex", "B-bin"):
        header = _sign(_private_key("branches"), body, branch)
        assert keyring.verify(body, header, livemode=False) == Verification("branches", branch)


def test_during_rotation_both_active_keys_verify_and_a_deactivated_key_is_rejected() -> None:
    old, new = _private_key("rotation_old"), _private_key("rotation_new")
    body = b'{"id":"663346f7a4e9b3001d2f8b11"}'
    both = ConektaKeyring(
        [WebhookKey("old", _public_pem(old)), WebhookKey("new", _public_pem(new))]
    )

    assert both.verify(body, _sign(old, body, "A"), livemode=False).key_id == "old"
    assert both.verify(body, _sign(new, body, "B-hex"), livemode=False).key_id == "new"

    rotated = ConektaKeyring(
        [
            WebhookKey("old", _public_pem(old), active=False),
            WebhookKey("new", _public_pem(new)),
        ]
    )
    assert [key.key_id for key in rotated.active_keys(livemode=False)] == ["new"]
    with pytest.raises(InvalidSignature):
        rotated.verify(body, _sign(old, body, "A"), livemode=False)
    assert rotated.verify(body, _sign(new, body, "A"), livemode=False).key_id == "new"


def test_a_key_for_the_other_livemode_never_verifies() -> None:
    body = b'{"livemode":true}'
    header = _sign(_private_key("live"), body, "A")
    sandbox_only = _keyring("live", livemode=False)
    live_only = _keyring("live", livemode=True)

    with pytest.raises(InvalidSignature, match="no active"):
        sandbox_only.verify(body, header, livemode=True)
    with pytest.raises(InvalidSignature, match="no active"):
        live_only.verify(body, header, livemode=False)
    assert live_only.verify(body, header, livemode=True).branch == "A"


def test_a_bad_pem_is_refused_when_the_keyring_is_built_and_names_the_key() -> None:
    with pytest.raises(InvalidInput, match="key_broken"):
        ConektaKeyring.from_pem_texts({"key_broken": "-----BEGIN PUBLIC KEY-----\nAAAA\n"})


def test_a_non_rsa_public_key_is_refused() -> None:
    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    with pytest.raises(InvalidInput, match="key_ed"):
        ConektaKeyring.from_pem_texts({"key_ed": pem})


def test_the_same_key_id_twice_is_refused() -> None:
    pem = _public_pem(_private_key("dup"))
    with pytest.raises(InvalidInput, match="twice"):
        ConektaKeyring([WebhookKey("dup", pem), WebhookKey("dup", pem)])


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=512),
    branch=st.sampled_from(["A", "B-hex", "B-bin"]),
    data=st.data(),
)
def test_any_single_changed_byte_of_a_signed_body_is_rejected(
    body: bytes, branch: str, data: st.DataObject
) -> None:
    key = _private_key("mutation")
    header = _sign(key, body, branch)
    keyring = _keyring("mutation")
    assert keyring.verify(body, header, livemode=False).branch == branch

    index = data.draw(st.integers(0, len(body) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    mutated = bytearray(body)
    mutated[index] ^= flip

    with pytest.raises(InvalidSignature):
        keyring.verify(bytes(mutated), header, livemode=False)


_HEADER_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ .!\n"


@st.composite
def _mutated_header(draw: st.DrawFn, header: str) -> str:
    operation = draw(st.sampled_from(["replace", "delete", "insert", "truncate", "swapcase"]))
    index = draw(st.integers(0, len(header) - 1))
    char = draw(st.sampled_from(_HEADER_CHARS))
    if operation == "replace":
        return header[:index] + char + header[index + 1 :]
    if operation == "delete":
        return header[:index] + header[index + 1 :]
    if operation == "insert":
        return header[:index] + char + header[index:]
    if operation == "truncate":
        return header[:index]
    return header[:index] + header[index].swapcase() + header[index + 1 :]


@settings(max_examples=300, deadline=None)
@given(branch=st.sampled_from(["A", "B-hex", "B-bin"]), data=st.data())
def test_any_mutated_header_is_rejected(branch: str, data: st.DataObject) -> None:
    body = _body("raw")
    header = _sign(_private_key("mutation"), body, branch)
    keyring = _keyring("mutation")

    mutated = data.draw(_mutated_header(header), label="header")
    assume(mutated.strip() != header)

    with pytest.raises(InvalidSignature):
        keyring.verify(body, mutated, livemode=False)


def test_a_non_canonical_header_that_decodes_to_the_same_bytes_is_rejected() -> None:
    body = _body("raw")
    header = _sign(_private_key("mutation"), body, "A")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert header.endswith("==")  # a 256-byte signature leaves 4 unused bits in its last symbol
    last = alphabet.index(header[-3])
    sloppy = header[:-3] + alphabet[last | 0b0001] + "=="
    assert sloppy != header
    assert base64.b64decode(sloppy, validate=True) == base64.b64decode(header)

    with pytest.raises(InvalidSignature, match="canonical"):
        _keyring("mutation").verify(body, sloppy, livemode=False)
