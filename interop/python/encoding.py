"""The conventions every breakglass format shares, as docs/format.md ("Conventions") states them.

The canonical encoding (u32 big-endian length before every field, numbers as 8-byte fields),
canonical hex and base64, strict JSON (no duplicate member), the fingerprint display form, and
the one exception every check raises (`Failure`: exit status 1).
"""

import base64
import hashlib
import json
import struct


class Failure(Exception):
    """A check failed: exit status 1."""


class Canonical:
    """`Canonical[a, b, ...]`: each field as u32 big-endian length || bytes; `number(n)` is the
    field holding n as 8 big-endian bytes."""

    def __init__(self):
        self.out = bytearray()

    def field(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.out += struct.pack(">I", len(data)) + bytes(data)
        return self

    def number(self, n):
        return self.field(struct.pack(">Q", n))

    def bytes(self):
        return bytes(self.out)

    def sha256(self):
        return hashlib.sha256(self.out).digest()


def b64e(data):
    return base64.b64encode(data).decode("ascii")


def b64_canonical(text, what):
    """Canonical RFC 4648 base64 (padding, no stray bits, no white space), or a failure."""
    if not isinstance(text, str):
        raise Failure(f"{what} is not a string")
    try:
        data = base64.b64decode(text, validate=True)
    except Exception as e:
        raise Failure(f"{what} is not base64 ({e})")
    if b64e(data) != text:
        raise Failure(f"{what} is not canonical base64")
    return data


def hex_canonical(text, what, length=None):
    """Lower-case hex, two digits per byte (of `length` bytes when given), or a failure."""
    if not isinstance(text, str):
        raise Failure(f"{what} is not a string")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise Failure(f"{what} is not hex")
    if data.hex() != text:
        raise Failure(f"{what} is not canonical (lower-case) hex")
    if length is not None and len(data) != length:
        raise Failure(f"{what} is {len(data)} bytes, not {length}")
    return data


def strict_json(data, what):
    """Parses UTF-8 JSON refusing a duplicate member anywhere."""

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise Failure(f"{what}: a JSON object has a duplicate member")
        return dict(pairs)

    try:
        return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data,
                          object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Failure(f"{what}: not JSON ({e})")


BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def display_form(digest):
    """The first 20 bytes in RFC 4648 base32 without padding, in groups of four joined by `-`."""
    text = base64.b32encode(digest[:20]).decode("ascii").rstrip("=")
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def normalise_pin(text):
    """A pinned fingerprint, display form (case, dashes, spaces ignored) or 64 hex characters."""
    cleaned = "".join(c for c in text if c != "-" and not c.isspace()).upper()
    if len(cleaned) == 32 and all(c in BASE32 for c in cleaned):
        return cleaned
    if len(cleaned) == 64 and all(c in "0123456789ABCDEF" for c in cleaned):
        return cleaned
    raise Failure(f"{text!r} is not a fingerprint (32 base32 or 64 hex characters)")


def pin_matches(pin, digest):
    pin = normalise_pin(pin)
    if len(pin) == 64:
        return pin == digest.hex().upper()
    return pin == display_form(digest).replace("-", "")
