"""The audit log, as docs/format.md ("Audit log") states it: its lines, their hash chain, the
token's checkpoints and their ECDSA P-256 signatures; verifying a log and writing lines onto
one.

`verify` reports what `breakglass audit verify --json` reports (entries, checkpoints, the last
checkpoint's line, the unsigned tail, the first broken line or bad signature, the head, a torn
tail), so the two can be compared member for member.
"""

import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from encoding import Failure, b64_canonical, b64e, strict_json

GENESIS = "0" * 64
CHECKPOINT_TAG = "breakglass-audit-checkpoint/1"
# Members of a line in the order the writer puts them; the optional ones left out when absent
# (or empty, for custodians and details).
LINE_MEMBERS = ("seq", "time", "event", "actor", "credential", "ceremony", "custodians",
                "details", "checkpoint", "prev")
REQUIRED = ("seq", "time", "event", "actor", "prev")


class NotAnEntry(Exception):
    """A line that is not an entry (its reason)."""


def line_hash(line):
    return hashlib.sha256(line).hexdigest()


def checkpoint_message(vault_id, seq, head):
    return f"{CHECKPOINT_TAG}\n{vault_id}\n{seq}\n{head}".encode("utf-8")


def _string(value, what):
    if not isinstance(value, str):
        raise NotAnEntry(f"{what} is not a string")


def parse_entry(line):
    """A line as an entry: a JSON object with the members of the document, of their types, and
    no other (member order and white space are not checked here: see `canonical_line`)."""
    try:
        entry = strict_json(line, "the line")
    except Failure as e:
        raise NotAnEntry(str(e))
    if not isinstance(entry, dict):
        raise NotAnEntry("not a JSON object")
    unknown = set(entry) - set(LINE_MEMBERS)
    if unknown:
        raise NotAnEntry(f"unknown member(s) {sorted(unknown)}")
    missing = [m for m in REQUIRED if m not in entry]
    if missing:
        raise NotAnEntry(f"missing member(s) {missing}")
    seq = entry["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2 ** 64:
        raise NotAnEntry("seq is not an unsigned 64-bit integer")
    for key in ("time", "event", "prev"):
        _string(entry[key], key)
    actor = entry["actor"]
    if not isinstance(actor, dict) or set(actor) != {"user", "host"}:
        raise NotAnEntry("actor is not {user, host}")
    _string(actor["user"], "actor.user")
    _string(actor["host"], "actor.host")
    for key in ("credential", "ceremony"):
        if entry.get(key) is not None:
            _string(entry[key], key)
    if "custodians" in entry:
        if not isinstance(entry["custodians"], list):
            raise NotAnEntry("custodians is not an array")
        for name in entry["custodians"]:
            _string(name, "a custodian")
    if "details" in entry:
        if not isinstance(entry["details"], dict):
            raise NotAnEntry("details is not an object")
        for key, value in entry["details"].items():
            _string(value, f"details.{key}")
    checkpoint = entry.get("checkpoint")
    if checkpoint is not None:
        if not isinstance(checkpoint, dict) or set(checkpoint) != {"head", "key_id", "signature"}:
            raise NotAnEntry("checkpoint is not {head, key_id, signature}")
        for key in ("head", "key_id", "signature"):
            _string(checkpoint[key], f"checkpoint.{key}")
    return entry


def canonical_line(entry):
    """The bytes the writer makes of an entry: compact JSON, members in document order, absent
    ones (null, or an empty custodians or details) left out, details sorted by key bytes."""
    out = {}
    for key in LINE_MEMBERS:
        value = entry.get(key)
        if value is None or (key in ("custodians", "details") and not value):
            continue
        if key == "actor":
            value = {"user": value["user"], "host": value["host"]}
        elif key == "details":
            value = {k: value[k] for k in sorted(value, key=lambda s: s.encode("utf-8"))}
        elif key == "checkpoint":
            value = {k: value[k] for k in ("head", "key_id", "signature")}
        out[key] = value
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def is_entry(line):
    try:
        parse_entry(line)
        return True
    except NotAnEntry:
        return False


def split(data):
    """Complete lines (empty ones skipped) and a torn tail: the bytes after the last newline,
    or a last line that is not an entry. Returns (lines, torn) with torn as
    {line, offset, len} or None."""
    complete = data.rfind(b"\n") + 1
    lines = [line for line in data[:complete].split(b"\n") if line]
    torn_at = complete
    if complete == len(data) and lines and not is_entry(lines[-1]):
        lines.pop()
        end = len(data[:complete].rstrip(b"\n"))
        torn_at = data[:end].rfind(b"\n") + 1
    torn = None
    if torn_at < len(data):
        torn = {"line": len(lines) + 1, "offset": torn_at, "len": len(data) - torn_at}
    return lines, torn


def ecdsa_verifies(public_key, signature_text, message):
    """ECDSA P-256 with SHA-256; the signature base64 of the 64-byte r || s."""
    try:
        signature = b64_canonical(signature_text, "the checkpoint signature")
    except Failure:
        return False
    if len(signature) != 64:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def verify(data, vault_id, audit_key, retired=()):
    """Walks the log `data`. `audit_key` is the manifest's audit public key (65 bytes);
    `retired` the retired keys as (last_line, key) oldest first: a checkpoint on line n is
    checked with the first retired key whose last_line is at least n, else the current key.
    Returns (report, entries) where entries are (line number, entry) of the lines that parsed."""
    lines, torn = split(data)
    report = {"entries": len(lines), "checkpoints": 0, "last_checkpoint": None, "unsigned_tail": 0,
              "first_problem": None, "bad_signature": None, "head": "", "torn_tail": torn,
              "noncanonical_lines": []}
    entries = []
    prev = GENESIS
    for number, line in enumerate(lines, start=1):
        try:
            entry = parse_entry(line)
        except NotAnEntry as e:
            report["first_problem"] = {"line": number, "reason": f"not a valid entry ({e})"}
            return report, entries
        if entry["seq"] != number:
            report["first_problem"] = {"line": number, "reason": f"sequence number {entry['seq']} where "
                                       f"{number} belongs (a line removed or inserted)"}
            return report, entries
        if entry["prev"] != prev:
            report["first_problem"] = {"line": number, "reason": "does not chain to the line before"}
            return report, entries
        if canonical_line(entry) != line:
            report["noncanonical_lines"].append(number)
        checkpoint = entry.get("checkpoint")
        if checkpoint is not None:
            key = next((k for last, k in retired if number <= last), audit_key)
            message = checkpoint_message(vault_id, number - 1, checkpoint["head"])
            if checkpoint["head"] != prev or not ecdsa_verifies(key, checkpoint["signature"], message):
                report["bad_signature"] = number
                return report, entries
            report["last_checkpoint"] = number
            report["checkpoints"] += 1
        entries.append((number, entry))
        prev = line_hash(line)
    report["unsigned_tail"] = report["entries"] - (report["last_checkpoint"] or 0)
    report["head"] = prev
    return report, entries


def check_head(data, head, who):
    """The log `data` continues a remembered head {seq, hash, offset} (a machine's anchor or the
    token's): at least `offset` bytes long, and the line ending with the newline just before
    `offset` hashes to `hash`. Only what follows is new."""
    offset = head["offset"]
    if offset == 0:
        return
    if offset > len(data) or data[offset - 1:offset] != b"\n":
        raise Failure(f"the audit log was cut back or rewritten: {who} remembers line {head['seq']} "
                      f"ending at byte {offset}, and no line of this {len(data)}-byte log ends there")
    line = data[data.rfind(b"\n", 0, offset - 1) + 1:offset - 1]
    if line_hash(line) != head["hash"]:
        raise Failure(f"the audit log was rewritten: the line ending at byte {offset} is not line "
                      f"{head['seq']} as {who} remembers it")


TOKEN_HEAD_FORMAT = "breakglass-audit-head/1"


def parse_token_head(value, vault_id):
    """The token's audit head data object: five newline-terminated lines (docs: Token audit
    head)."""
    try:
        text = bytes(value).decode("ascii")
    except UnicodeDecodeError:
        raise Failure("the token's audit head is not text")
    fields = text.split("\n")
    if len(fields) != 6 or fields[5] != "" or fields[0] != TOKEN_HEAD_FORMAT:
        raise Failure("the token's audit head is not five lines of breakglass-audit-head/1")
    if fields[1] != vault_id:
        raise Failure("the token's audit head names another vault")
    if len(fields[3]) != 64 or any(c not in "0123456789abcdef" for c in fields[3]):
        raise Failure("the token's audit head hash is not 64 lower-case hex digits")
    if not fields[2].isdigit() or not fields[4].isdigit():
        raise Failure("the token's audit head has a sequence number or offset that is not a number")
    return {"seq": int(fields[2]), "hash": fields[3], "offset": int(fields[4])}


def intact(report):
    return report["first_problem"] is None and report["bad_signature"] is None


def new_entry(seq, time, event, actor, prev, credential=None, details=None, checkpoint=None):
    entry = {"seq": seq, "time": time, "event": event, "actor": actor, "prev": prev}
    if credential:
        entry["credential"] = credential
    if details:
        entry["details"] = details
    if checkpoint:
        entry["checkpoint"] = checkpoint
    return entry


def checkpoint_entry(seq, time, actor, head, key_id, signature):
    """Line `seq`, a checkpoint signing line seq - 1 whose hash is `head`."""
    return new_entry(seq, time, "checkpoint", actor, head,
                     checkpoint={"head": head, "key_id": key_id, "signature": b64e(signature)})
