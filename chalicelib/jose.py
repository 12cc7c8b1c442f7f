"""The few JOSE pieces the identity-provider mode needs, by hand and with the standard library only:
a KMS public key (DER SubjectPublicKeyInfo) as a JWK and its RFC 7638 thumbprint, an ECDSA signature
from KMS's DER form to JWS's fixed-width r||s (RFC 7518 section 3.4), and base64url. The Lambda
package then needs no JOSE or crypto library on the vend path (docs/long-sessions.md).

Only the two key types the issuer signs with are read: RSA (2048-4096 bits, for RS256) and NIST P-256
(for ES256). Anything else raises `JoseError`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

_RSA_OID = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1 rsaEncryption
_EC_OID = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1 id-ecPublicKey
_P256_OID = bytes.fromhex("2a8648ce3d030107")  # 1.2.840.10045.3.1.7 prime256v1
P256_COORDINATE_BYTES = 32
MIN_RSA_BITS = 2048


class JoseError(ValueError):
    """A key or signature this module does not read."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or not text.isascii() or "=" in text:
        raise JoseError("not base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise JoseError("not base64url") from None


def _element(data: bytes, position: int) -> tuple[int, int, int]:
    """The DER element at `position`: its tag, where its content starts and where it ends."""
    if position + 2 > len(data):
        raise JoseError("truncated DER")
    tag, length = data[position], data[position + 1]
    start = position + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 3 or start + count > len(data):
            raise JoseError("bad DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise JoseError("truncated DER")
    return tag, start, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, bytes]]:
    out = []
    while start < end:
        tag, content, start = _element(data, start)
        out.append((tag, data[content:start]))
    if start != end:
        raise JoseError("bad DER nesting")
    return out


def _unsigned(integer: bytes) -> bytes:
    return integer.lstrip(b"\x00") or b"\x00"


def jwk_from_spki(der: bytes) -> dict[str, str]:
    """The public JWK (kty and its members only) of a DER SubjectPublicKeyInfo."""
    tag, start, end = _element(der, 0)
    if tag != 0x30 or end != len(der):
        raise JoseError("not a SubjectPublicKeyInfo")
    parts = _children(der, start, end)
    if len(parts) != 2 or parts[0][0] != 0x30 or parts[1][0] != 0x03:
        raise JoseError("not a SubjectPublicKeyInfo")
    algorithm = _children(parts[0][1], 0, len(parts[0][1]))
    bits = parts[1][1]
    if not bits or bits[0] != 0:
        raise JoseError("the key's bit string has unused bits")
    key = bits[1:]
    if algorithm and algorithm[0] == (0x06, _RSA_OID):
        tag, start, end = _element(key, 0)
        numbers = _children(key, start, end) if tag == 0x30 and end == len(key) else []
        if len(numbers) != 2 or any(t != 0x02 for t, _ in numbers):
            raise JoseError("not an RSA public key")
        n, e = (_unsigned(v) for _, v in numbers)
        if len(n) * 8 < MIN_RSA_BITS:
            raise JoseError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
        return {"kty": "RSA", "n": b64url(n), "e": b64url(e)}
    if algorithm == [(0x06, _EC_OID), (0x06, _P256_OID)]:
        if len(key) != 1 + 2 * P256_COORDINATE_BYTES or key[0] != 0x04:
            raise JoseError("not an uncompressed P-256 point")
        x, y = key[1 : 1 + P256_COORDINATE_BYTES], key[1 + P256_COORDINATE_BYTES :]
        return {"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y)}
    raise JoseError("only RSA and NIST P-256 public keys are read")


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, without white space; base64url."""
    required = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def ecdsa_raw(der: bytes, size: int = P256_COORDINATE_BYTES) -> bytes:
    """A DER ECDSA signature (SEQUENCE of r and s) as JWS's r||s, each `size` bytes."""
    tag, start, end = _element(der, 0)
    numbers = _children(der, start, end) if tag == 0x30 and end == len(der) else []
    if len(numbers) != 2 or any(t != 0x02 for t, _ in numbers):
        raise JoseError("not a DER ECDSA signature")
    r, s = (_unsigned(v) for _, v in numbers)
    if len(r) > size or len(s) > size:
        raise JoseError("the signature does not fit the curve")
    return r.rjust(size, b"\x00") + s.rjust(size, b"\x00")


def compact(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    """The JWS signing input: base64url(header) '.' base64url(claims), compact JSON."""
    def part(value: dict[str, Any]) -> str:
        return b64url(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))

    return f"{part(header)}.{part(claims)}".encode("ascii")
