"""The audit log, as docs/format.md ("Audit log, format 1", "Signed audit lines (format 2)",
"Envelope records") states it: its lines, their hash chain, the token's checkpoints and their
ECDSA P-256 signatures, the operators' Ed25519 signatures over format-2 lines, the roles and
authority each line needs; verifying a log and writing lines onto one.

`verify` reports what `breakglass audit verify --json` reports (entries, checkpoints, the last
checkpoint's line, the unsigned tail, the first broken line or bad signature, the head, a torn
tail, whether the log has signed lines), so the two can be compared member for member, and
the envelope each credential's latest signed record names.
"""

import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from encoding import Canonical, Failure, b64_canonical, b64e, strict_json

GENESIS = "0" * 64
CHECKPOINT_TAG = "breakglass-audit-checkpoint/1"
# Members of a line in the order the writer puts them; the optional ones left out when absent
# (or empty, for custodians and details).
LINE_MEMBERS = ("seq", "time", "event", "actor", "credential", "ceremony", "custodians",
                "details", "checkpoint", "prev")
REQUIRED = ("seq", "time", "event", "actor", "prev")

# Format 2 (signed lines).
LINE_FORMAT = 2
FORMAT_TWO_START = b'{"v":'
ENTRY_TAG = b"breakglass-audit-entry/2"
SIGNATURE_MEMBER = b',"signature":"'
BODY_MEMBERS = ("v",) + LINE_MEMBERS
ACTORS = ("operator", "custodian", "quorum")
CUSTODIAN_EVENTS = ("share_verify", "ceremony_contribute")
AUTHORITY_DETAILS = ("manifest_sha256", "manifest_version", "manifest_digest", "envelope_digest")
ENVELOPE_DETAIL = "envelope_digest"
# The only events whose lines record an envelope.
RECORD_EVENTS = ("seal", "envelope_recorded")
SECURITY_OFFICER_EVENTS = ("init", "manifest", "hsm_enrol", "rekey", "recovery_enable", "operator_add",
                           "operator_remove", "ceremony_opened", "ceremony_cancelled", "upgrade", "policy",
                           "envelope_recorded")
CLOUD_ADMINISTRATOR_EVENTS = ("seal", "rotate", "revoke_sessions")
BASE64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


class NotAnEntry(Exception):
    """A line that is not an entry (its reason)."""


def line_hash(line):
    return hashlib.sha256(line).hexdigest()


def checkpoint_message(vault_id, seq, head):
    return f"{CHECKPOINT_TAG}\n{vault_id}\n{seq}\n{head}".encode("utf-8")


def _string(value, what):
    if not isinstance(value, str):
        raise NotAnEntry(f"{what} is not a string")


def _integer(value, what, limit):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise NotAnEntry(f"{what} is not an integer from 0 to {limit}")


def _actor(actor, formats):
    """`{user, host}` (format 1) or one of `{operator|custodian|quorum: name}` (format 2), as
    `formats` allows; returns which."""
    if isinstance(actor, dict) and set(actor) == {"user", "host"} and 1 in formats:
        _string(actor["user"], "actor.user")
        _string(actor["host"], "actor.host")
        return 1
    if isinstance(actor, dict) and len(actor) == 1 and next(iter(actor)) in ACTORS and 2 in formats:
        _string(next(iter(actor.values())), "the actor's name")
        return 2
    raise NotAnEntry("actor is not " + (" or ".join(
        {1: "{user, host}", 2: "{operator|custodian|quorum: name}"}[f] for f in formats)))


def _members(line, allowed, what):
    try:
        entry = strict_json(line, what)
    except Failure as e:
        raise NotAnEntry(str(e))
    if not isinstance(entry, dict):
        raise NotAnEntry("not a JSON object")
    unknown = set(entry) - set(allowed)
    if unknown:
        raise NotAnEntry(f"unknown member(s) {sorted(unknown)}")
    missing = [m for m in REQUIRED if m not in entry]
    if missing:
        raise NotAnEntry(f"missing member(s) {missing}")
    _integer(entry["seq"], "seq", 2 ** 64 - 1)
    for key in ("time", "event", "prev"):
        _string(entry[key], key)
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


def parse_entry(line):
    """A format-1 line as an entry: a JSON object with the members of the document, of their
    types, and no other (member order and white space are not checked here: see
    `canonical_line`)."""
    entry = _members(line, LINE_MEMBERS, "the line")
    _actor(entry["actor"], (1,))
    return entry


def parse_any(line):
    """A line of either format, by its members' shape alone (nothing verified): what tells a
    complete line from a write cut short."""
    entry = _members(line, LINE_MEMBERS + ("v", "signature"), "the line")
    if entry.get("v") is not None:
        _integer(entry["v"], "v", 255)
    if entry.get("signature") is not None:
        _string(entry["signature"], "signature")
    _actor(entry["actor"], (1, 2))
    return entry


def parse_body(data):
    """A format-2 body (the line without its signature), strictly."""
    body = _members(data, BODY_MEMBERS, "the line")
    if "v" not in body:
        raise NotAnEntry("missing member(s) ['v']")
    _integer(body["v"], "v", 255)
    _actor(body["actor"], (2,))
    return body


def body_bytes(body):
    """The bytes the writer makes of a format-2 body: compact JSON, `v` first, then the members
    of format 1 in their order, absent ones (null, or an empty custodians or details) left
    out, details sorted by key bytes."""
    out = {"v": body["v"]}
    for key in LINE_MEMBERS:
        value = body.get(key)
        if value is None or (key in ("custodians", "details") and not value):
            continue
        if key == "details":
            value = {k: value[k] for k in sorted(value, key=lambda s: s.encode("utf-8"))}
        elif key == "checkpoint":
            value = {k: value[k] for k in ("head", "key_id", "signature")}
        out[key] = value
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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
        parse_any(line)
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


def required_role(event):
    """The role a format-2 line's event needs of its operator (None: any operator)."""
    if event in SECURITY_OFFICER_EVENTS:
        return "security_officer"
    if event in CLOUD_ADMINISTRATOR_EVENTS:
        return "cloud_administrator"
    return None


def entry_message(vault_id, seq, prev, operator, body):
    """What an operator signs: Canonical["breakglass-audit-entry/2", vault id, num(seq), prev,
    operator name, SHA-256(body)]."""
    return (Canonical().field(ENTRY_TAG).field(vault_id).number(seq).field(prev).field(operator)
            .field(hashlib.sha256(body).digest()).bytes())


def split_signature(line):
    """(body bytes, signature text or None): a line ending with `,"signature":"<base64>"}` is
    cut at the last `,"signature":"` and `}` put back; any other line is all body."""
    if not line.endswith(b'"}'):
        return line, None
    rest = line[:-2]
    at = rest.rfind(SIGNATURE_MEMBER)
    if at < 0:
        return line, None
    signature = rest[at + len(SIGNATURE_MEMBER):]
    if not all(b in BASE64_CHARS for b in signature):
        return line, None
    return line[:at] + b"}", signature.decode("ascii")


class Signers:
    """Who may sign format-2 lines: the authenticated manifest's operators and retired
    operators (each `{name, roles, public_key[, last_line]}`)."""

    def __init__(self, operators, retired=()):
        self.operators = list(operators)
        self.retired = list(retired)

    def at(self, name, role, seq):
        """The keys that may have signed line `seq` as `name` holding `role` (None: any role):
        the operator of that name now, and a retired operator of that name whose last_line is
        at least seq. Raises NotAnEntry saying why none may."""
        current = next((o for o in self.operators if o["name"] == name), None)
        found = []
        if current is not None and (role is None or role in current["roles"]):
            found.append(current)
        found += [r for r in self.retired if r["name"] == name and r["last_line"] >= seq
                  and (role is None or role in r["roles"])]
        if not found:
            if current is not None:
                raise NotAnEntry(f"operator {name} is not authorised: the event needs a {role}")
            raise NotAnEntry(f"operator {name} is not authorised: no operator of that name may sign line {seq}")
        return found


def ed25519_verifies(public_key_hex, signature, message):
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def _no_authority(body, who):
    key = next((k for k in (body.get("details") or {}) if k in AUTHORITY_DETAILS), None)
    if key is not None:
        raise NotAnEntry(f"a {who} line records {body['event']} with {key}: only an operator's may")


def verify_line(line, seq, prev, vault_id, signers):
    """One format-2 line at its place: strict body, canonical re-serialisation, sequence and
    chain, then its actor (docs: "Signed audit lines (format 2)"). Returns (body, signed)."""
    found, signature = split_signature(line)
    body = parse_body(found)
    if body["v"] != LINE_FORMAT:
        raise NotAnEntry(f"line format {body['v']}, expected {LINE_FORMAT}")
    try:
        canonical = body_bytes(body)
    except UnicodeEncodeError:
        canonical = None
    if canonical != found:
        raise NotAnEntry("not in the canonical form its signature covers")
    if body["seq"] != seq:
        raise NotAnEntry(f"sequence number {body['seq']} where {seq} belongs (a line removed or inserted)")
    if body["prev"] != prev:
        raise NotAnEntry("does not chain to the line before")
    (kind, name), = body["actor"].items()
    if kind == "operator":
        if signature is None:
            raise NotAnEntry(f"an operator line ({name}) without a signature")
        try:
            raw = b64_canonical(signature, "the signature")
        except Failure:
            raw = b""
        if len(raw) != 64:
            raise NotAnEntry(f"the signature of operator {name} is not 64 bytes of base64")
        keys = signers.at(name, required_role(body["event"]), seq)
        message = entry_message(vault_id, seq, prev, name, found)
        if not any(ed25519_verifies(k["public_key"], raw, message) for k in keys):
            raise NotAnEntry(f"the signature of operator {name} does not verify")
        if ENVELOPE_DETAIL in (body.get("details") or {}) and body["event"] not in RECORD_EVENTS:
            raise NotAnEntry(f"a {body['event']} line records an envelope: only seal and "
                             "envelope_recorded lines do")
        return body, True
    if signature is not None:
        raise NotAnEntry(f"a signature on a {kind} line: only operators sign")
    if kind == "custodian":
        if body["event"] not in CUSTODIAN_EVENTS or body.get("checkpoint") is not None:
            raise NotAnEntry(f"a custodian line records {body['event']}: a custodian may not")
        _no_authority(body, "custodian")
    else:
        if required_role(body["event"]) is not None or body["event"] in CUSTODIAN_EVENTS:
            raise NotAnEntry(f"an unsigned quorum line records {body['event']}: an operator's role is needed")
        _no_authority(body, "quorum")
    return body, False


def verify(data, vault_id, audit_key, retired=(), signers=None):
    """Walks the log `data`. `audit_key` is the manifest's audit public key (65 bytes);
    `retired` the retired keys as (last_line, key) oldest first: a checkpoint on line n is
    checked with the first retired key whose last_line is at least n, else the current key.
    `signers` (a `Signers`, from the authenticated certified manifest) checks format-2 lines;
    without it (a format-1 manifest) every format-2 line is refused.
    Returns (report, entries, records): entries are (line number, entry) of the lines that
    verified; records the envelope digest each credential's latest signed record names."""
    lines, torn = split(data)
    report = {"entries": len(lines), "checkpoints": 0, "last_checkpoint": None, "unsigned_tail": 0,
              "first_problem": None, "bad_signature": None, "head": "", "torn_tail": torn,
              "signed_lines": False, "noncanonical_lines": []}
    entries, records = [], {}
    prev = GENESIS
    signed_lines = False
    for number, line in enumerate(lines, start=1):
        def problem(reason):
            report["first_problem"] = {"line": number, "reason": reason}
            return report, entries, records
        if line.startswith(FORMAT_TWO_START):
            if signers is None:
                return problem("a signed (format 2) line, and no manifest to check it against")
            try:
                entry, signed = verify_line(line, number, prev, vault_id, signers)
            except NotAnEntry as e:
                return problem(str(e))
            signed_lines = True
            digest = (entry.get("details") or {}).get(ENVELOPE_DETAIL)
            if signed and entry.get("credential") is not None and digest is not None:
                records[entry["credential"]] = digest
        else:
            if signed_lines:
                return problem("an unsigned (format 1) line after signed lines: every line since the "
                               "log was upgraded is written in format 2 (a line appended outside breakglass)")
            try:
                entry = parse_entry(line)
            except NotAnEntry as e:
                return problem(f"not a valid entry ({e})")
            if entry["seq"] != number:
                return problem(f"sequence number {entry['seq']} where {number} belongs (a line removed or inserted)")
            if entry["prev"] != prev:
                return problem("does not chain to the line before")
            if canonical_line(entry) != line:
                report["noncanonical_lines"].append(number)
        checkpoint = entry.get("checkpoint")
        if checkpoint is not None:
            key = next((k for last, k in retired if number <= last), audit_key)
            message = checkpoint_message(vault_id, number - 1, checkpoint["head"])
            if checkpoint["head"] != prev or not ecdsa_verifies(key, checkpoint["signature"], message):
                report["bad_signature"] = number
                return report, entries, records
            report["last_checkpoint"] = number
            report["checkpoints"] += 1
        entries.append((number, entry))
        prev = line_hash(line)
    report["signed_lines"] = signed_lines
    report["unsigned_tail"] = report["entries"] - (report["last_checkpoint"] or 0)
    report["head"] = prev
    return report, entries, records


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


def signed_line(body, vault_id, operator, sign):
    """A format-2 operator line (without newline): the body's bytes with
    `,"signature":"<base64>"` before the final `}`, `sign` being the operator's Ed25519
    signature function over the entry message."""
    return signed_bytes(body_bytes(body), body["seq"], body["prev"], vault_id, operator, sign)


def signed_bytes(data, seq, prev, vault_id, operator, sign):
    """`data` (a body's bytes, as they will be on disk) signed as line `seq` after `prev`."""
    signature = sign(entry_message(vault_id, seq, prev, operator, data))
    return data[:-1] + SIGNATURE_MEMBER + b64e(signature).encode("ascii") + b'"}'


def new_body(seq, time, event, operator, prev, credential=None, details=None, checkpoint=None):
    body = {"v": LINE_FORMAT, "seq": seq, "time": time, "event": event, "actor": {"operator": operator},
            "prev": prev}
    if credential:
        body["credential"] = credential
    if details:
        body["details"] = details
    if checkpoint:
        body["checkpoint"] = checkpoint
    return body
