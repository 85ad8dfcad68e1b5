"""The manifest, as docs/format.md ("Manifest and fingerprint", "Certified manifest") states it.

Reads `vault.json` strictly (every member known, every type and encoding checked), computes the
format-1 fingerprint, the vault identity, the certificate digest `SHA-256(V)` and checks the
quorum's Ed25519 signature; checks the version chain (the versions the audit log records, a
machine anchor, `succession.json` when the pin names the identity before a rekey,
`upgrade.json` when it names the format-1 fingerprint before `breakglass upgrade`).
"""

import hashlib
import os

import audit_log
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit_log import ecdsa_verifies
from encoding import (Canonical, Failure, b64_canonical, display_form, hex_canonical, pin_matches,
                      strict_json)

VAULT_FORMAT = "breakglass-vault/1"
RECIPIENTS_FORMAT = "breakglass-vault/2"
CERTIFIED_FORMAT = "breakglass-certified-manifest/1"
FINGERPRINT_TAG = b"breakglass-fingerprint/1"
IDENTITY_TAG = b"breakglass-identity/2"
CERTIFICATE_TAG = b"breakglass-manifest-certificate/1"
SUCCESSION_TAG = b"breakglass-identity-succession/1"
UPGRADE_FORMAT = "breakglass-upgrade-statement/1"
UPGRADE_TAG = b"breakglass-format-1-upgrade/1"
ROLES = ("security_officer", "cloud_administrator")
MAX_RECIPIENT_LEN = 4096
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

# --------------------------------------------------------------------------------------------
# Strict shape: (required members, optional members), each with a checker.

U8, U16, U32, U64 = 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF


def integer(limit):
    def check(value, what):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
            raise Failure(f"{what} is not an integer from 0 to {limit}")
    return check


def string(value, what):
    if not isinstance(value, str):
        raise Failure(f"{what} is not a string")


def boolean(value, what):
    if not isinstance(value, bool):
        raise Failure(f"{what} is not true or false")


def array(item):
    def check(value, what):
        if not isinstance(value, list):
            raise Failure(f"{what} is not an array")
        for i, v in enumerate(value):
            item(v, f"{what}[{i}]")
    return check


def obj(required, optional=None):
    optional = optional or {}

    def check(value, what):
        if not isinstance(value, dict):
            raise Failure(f"{what} is not an object")
        unknown = set(value) - set(required) - set(optional)
        if unknown:
            raise Failure(f"{what} has unknown member(s) {sorted(unknown)}")
        missing = set(required) - set(value)
        if missing:
            raise Failure(f"{what} lacks member(s) {sorted(missing)}")
        for key, checker in list(required.items()) + list(optional.items()):
            if key in value and not (key in optional and value[key] is None):
                checker(value[key], f"{what}.{key}")
    return check


def pin_source(value, what):
    shapes = {"quorum": {}, "prompt": {}, "env": {"var": string}, "file": {"path": string}}
    if not isinstance(value, dict) or value.get("source") not in shapes:
        raise Failure(f"{what} is not a PIN source (quorum, env, file, prompt)")
    obj(dict(shapes[value["source"]], source=string))(value, what)


def one_of(*allowed):
    def check(value, what):
        if value not in allowed:
            raise Failure(f"{what} is {value!r}, not one of {list(allowed)}")
    return check


CUSTODIAN = obj({"name": string, "commitment_salt": string, "commitment": string})
GROUP = obj({"name": string, "threshold": integer(U8), "members": array(CUSTODIAN)})
QUORUM = obj({"group_threshold": integer(U8), "groups": array(GROUP), "identifier": integer(U16),
              "iteration_exponent": integer(U8), "extendable": boolean, "public_key": string})
HSM = obj({"label": string, "serial": string, "manufacturer": string, "model": string,
           "module": string, "seal_key_id": string, "seal_public_key": string, "pin": pin_source},
          {"softhsm_conf": string, "so_pin": pin_source, "pin_derivation": one_of("per-token/2")})
AUDIT_KEY = obj({"token": string, "key_id": string, "public_key": string})
RETIRED = obj({"token": string, "public_key": string, "last_line": integer(U64)})
POLICY = obj({"drill_interval_days": integer(U32), "default_session_seconds": integer(U32)},
             {"require_reason": boolean})


def string_map(value, what):
    if not isinstance(value, dict):
        raise Failure(f"{what} is not an object")
    for key, item in value.items():
        string(item, f"{what}.{key}")


MANIFEST = obj({"format": one_of(VAULT_FORMAT, RECIPIENTS_FORMAT), "vault_id": string, "created": string,
                "quorum": QUORUM, "hsms": array(HSM), "audit": AUDIT_KEY, "policy": POLICY},
               {"recovery": QUORUM, "retired_audit_keys": array(RETIRED), "recipients": string_map})
OPERATOR = obj({"name": string, "roles": array(one_of(*ROLES)), "public_key": string})
RETIRED_OPERATOR = obj({"name": string, "roles": array(one_of(*ROLES)), "public_key": string,
                        "last_line": integer(U64)})
CERTIFIED = obj({"format": one_of(CERTIFIED_FORMAT), "version": integer(U64),
                 "quorum_signing_key": string, "operators": array(OPERATOR),
                 "manifest": MANIFEST, "signature": string},
                {"retired_operators": array(RETIRED_OPERATOR)})


def recipient_shape(text):
    """An age X25519 recipient (`age1` and bech32 characters) or an OpenSSH `ssh-ed25519` /
    `ssh-rsa` public key line (printable ASCII), at most 4096 bytes."""
    if not text or len(text.encode("utf-8")) > MAX_RECIPIENT_LEN:
        return False
    if text.startswith("age1"):
        return len(text) > 4 and all(c in BECH32 for c in text[4:])
    return (text.startswith("ssh-ed25519 ") or text.startswith("ssh-rsa ")) and all(
        c == " " or "!" <= c <= "~" for c in text)


def check_recipients(m):
    """Format 2 remembers recipients, format 1 none; each for a custodian of the quorum or the
    recovery set, in a recipient's shape (docs: "Format 2: remembered recipients")."""
    recipients = m.get("recipients") or {}
    expected = RECIPIENTS_FORMAT if recipients else VAULT_FORMAT
    if m["format"] != expected:
        raise Failure(f"the manifest has format {m['format']!r} with {len(recipients)} remembered "
                      f"recipient(s): {expected!r} is the format for that")
    members = {member["name"] for share_set in (m["quorum"], m.get("recovery")) if share_set
               for group in share_set["groups"] for member in group["members"]}
    for custodian, recipient in recipients.items():
        if custodian not in members:
            raise Failure(f"the recipient remembered for {custodian!r}: not a custodian of this vault")
        if not recipient_shape(recipient):
            raise Failure(f"the recipient remembered for {custodian!r}: not an age recipient (age1...) "
                          "or an ssh-ed25519 / ssh-rsa public key")


def check_keys(m):
    """Every key and id the manifest names is canonical hex of its length (docs: Conventions)."""
    hex_canonical(m["vault_id"], "vault_id", 16)
    for name, share_set in (("quorum", m["quorum"]), ("recovery", m.get("recovery"))):
        if share_set is None:
            continue
        hex_canonical(share_set["public_key"], f"{name}.public_key", 32 if name == "quorum" else 65)
        for group in share_set["groups"]:
            for member in group["members"]:
                hex_canonical(member["commitment_salt"], f"{name}: {member['name']}'s commitment_salt", 32)
                hex_canonical(member["commitment"], f"{name}: {member['name']}'s commitment", 32)
    for hsm in m["hsms"]:
        hex_canonical(hsm["seal_key_id"], f"token {hsm['label']}: seal_key_id")
        hex_canonical(hsm["seal_public_key"], f"token {hsm['label']}: seal_public_key", 65)
    hex_canonical(m["audit"]["key_id"], "audit.key_id")
    hex_canonical(m["audit"]["public_key"], "audit.public_key", 65)
    for retired in m.get("retired_audit_keys") or []:
        hex_canonical(retired["public_key"], f"retired audit key of {retired['token']}", 65)
    check_recipients(m)


# --------------------------------------------------------------------------------------------
# Hashes.


def quorum_encoding(c, q):
    c.number(q["group_threshold"]).number(len(q["groups"]))
    for group in q["groups"]:
        c.field(group["name"]).number(group["threshold"]).number(len(group["members"]))
        for member in group["members"]:
            c.field(member["name"]).field(member["commitment_salt"]).field(member["commitment"])
    c.number(q["identifier"]).number(q["iteration_exponent"]).number(1 if q["extendable"] else 0)
    c.field(q["public_key"])


def fingerprint_v1(m):
    c = Canonical().field(FINGERPRINT_TAG).field(m["vault_id"])
    quorum_encoding(c, m["quorum"])
    c.number(len(m["hsms"]))
    for hsm in m["hsms"]:
        c.field(hsm["label"]).field(hsm["serial"]).field(hsm["seal_key_id"]).field(hsm["seal_public_key"])
    c.field(m["audit"]["token"]).field(m["audit"]["key_id"]).field(m["audit"]["public_key"])
    if m.get("recovery") is not None:
        c.field(b"recovery")
        quorum_encoding(c, m["recovery"])
    for retired in m.get("retired_audit_keys") or []:
        c.field(b"retired audit key").field(retired["token"]).field(retired["public_key"])
        c.number(retired["last_line"])
    return c.sha256()


def identity(vault_id, quorum, signing_key):
    c = Canonical().field(IDENTITY_TAG).field(vault_id)
    quorum_encoding(c, quorum)
    return c.field(b"quorum signing key").field(signing_key).sha256()


def normalised(document):
    """The document as its writer serialises it: members that hold their default are left out
    (`softhsm_conf`, `so_pin`, `pin_derivation`, `recovery` when null; `retired_audit_keys`,
    `recipients` and `retired_operators` when empty; `policy.require_reason` when true), so
    `V` is the same however a reader got there."""
    doc = dict(document)
    m = dict(doc["manifest"])
    if m.get("recovery") is None:
        m.pop("recovery", None)
    if not m.get("retired_audit_keys"):
        m.pop("retired_audit_keys", None)
    if not m.get("recipients"):
        m.pop("recipients", None)
    if not doc.get("retired_operators"):
        doc.pop("retired_operators", None)
    policy = dict(m["policy"])
    if policy.get("require_reason") is True:
        del policy["require_reason"]
    m["policy"] = policy
    hsms = []
    for hsm in m["hsms"]:
        hsms.append({k: v for k, v in hsm.items()
                     if not (k in ("softhsm_conf", "so_pin", "pin_derivation") and v is None)})
    m["hsms"] = hsms
    doc["manifest"] = m
    return doc


def encode_value(value, c):
    """The data-model encoding of docs/format.md ("Certified manifest"): a tag field, then the
    content."""
    if value is None:
        c.field(b"n")
    elif isinstance(value, bool):
        c.field(b"b").number(1 if value else 0)
    elif isinstance(value, int):
        if value >= 0:
            c.field(b"u").number(value)
        else:
            c.field(b"i").field(value.to_bytes(8, "big", signed=True))
    elif isinstance(value, str):
        c.field(b"s").field(value)
    elif isinstance(value, list):
        c.field(b"a").number(len(value))
        for item in value:
            encode_value(item, c)
    elif isinstance(value, dict):
        c.field(b"o").number(len(value))
        for key in sorted(value, key=lambda k: k.encode("utf-8")):
            c.field(key)
            encode_value(value[key], c)
    else:
        raise Failure(f"a value the manifest cannot hold ({type(value).__name__})")


def certificate_digest(document):
    without = {k: v for k, v in normalised(document).items() if k != "signature"}
    c = Canonical()
    encode_value(without, c)
    return c.sha256()


def certificate_message(vault_id, version, identity_hash, digest):
    return (Canonical().field(CERTIFICATE_TAG).field(vault_id).number(version)
            .field(identity_hash).field(digest).bytes())


def ed25519_verifies(public_key, signature_text, message):
    try:
        signature = b64_canonical(signature_text, "the signature")
    except Failure:
        return False
    if len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# Reading and authenticating.


class Manifest:
    """vault.json as read: the manifest proper (`m`), and for a certified one its version,
    identity, digest and signature status."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.bytes = f.read()
        doc = strict_json(self.bytes, os.path.basename(path))
        if not isinstance(doc, dict):
            raise Failure("vault.json is not a JSON object")
        self.format = doc.get("format")
        if self.format == VAULT_FORMAT:
            MANIFEST(doc, "manifest")
            self.document, self.m = doc, doc
            self.version = None
        elif self.format == CERTIFIED_FORMAT:
            CERTIFIED(doc, "vault.json")
            self.document, self.m = doc, doc["manifest"]
            self.version = doc["version"]
        else:
            raise Failure(f"vault.json has format {self.format!r}: not a breakglass manifest")
        check_keys(self.m)
        self.vault_id = self.m["vault_id"]
        self.fingerprint_v1 = fingerprint_v1(self.m)

    def compute(self):
        """The identity this certified manifest claims and its certificate digest (nothing
        verified yet: a reader compares the identity with its pin first, as breakglass does)."""
        if self.format != CERTIFIED_FORMAT:
            raise Failure("vault.json is a format-1 manifest (breakglass-vault/1): it is not "
                          "certified; breakglass refuses it until `breakglass upgrade`")
        doc = self.document
        self.signing_key = hex_canonical(doc["quorum_signing_key"], "quorum_signing_key", 32)
        for op in doc["operators"]:
            hex_canonical(op["public_key"], f"operator {op['name']}'s public_key", 32)
        for op in doc.get("retired_operators") or []:
            hex_canonical(op["public_key"], f"retired operator {op['name']}'s public_key", 32)
        self.identity = identity(self.vault_id, self.m["quorum"], self.signing_key)
        self.digest = certificate_digest(doc)

    def authenticate(self):
        """Checks the quorum's signature over this certified manifest; returns the identity."""
        if not hasattr(self, "identity"):
            self.compute()
        doc = self.document
        message = certificate_message(self.vault_id, doc["version"], self.identity, self.digest)
        if not ed25519_verifies(self.signing_key, doc["signature"], message):
            raise Failure(f"the quorum signature over manifest version {doc['version']} does not "
                          "verify: vault.json was changed")
        self.check_operators()
        return self.identity

    def check_operators(self):
        names, keys = set(), set()
        for op in self.document["operators"]:
            if not op["roles"]:
                raise Failure(f"operator {op['name']} has no role")
            if op["name"] in names or op["public_key"] in keys:
                raise Failure(f"operator {op['name']} is listed twice or shares a key")
            names.add(op["name"])
            keys.add(op["public_key"])
        if not any("security_officer" in op["roles"] for op in self.document["operators"]):
            raise Failure("the manifest has no security officer")

    def signers(self):
        """Who may sign format-2 audit lines: the operators and retired operators of this
        authenticated certified manifest (None for a format-1 manifest: it has no operators)."""
        if self.format != CERTIFIED_FORMAT:
            return None
        return audit_log.Signers(self.document["operators"], self.document.get("retired_operators") or [])

    def summary(self):
        out = {"format": self.format, "vault_id": self.vault_id,
               "fingerprint_v1": display_form(self.fingerprint_v1)}
        if self.format == CERTIFIED_FORMAT:
            out.update({
                "version": self.version, "identity": self.identity.hex(),
                "fingerprint": display_form(self.identity), "digest": self.digest.hex(),
                "operators": [{"name": o["name"], "roles": o["roles"]} for o in self.document["operators"]],
                "retired_operators": [{"name": o["name"], "roles": o["roles"], "last_line": o["last_line"]}
                                      for o in self.document.get("retired_operators") or []],
            })
        return out


def check_pin(manifest, vault, pin):
    """The identity must be the pinned one, or follow from it by the vault's succession
    statement (a rekey); returns how."""
    if pin_matches(pin, manifest.identity):
        return "pinned"
    if follows_upgrade(manifest, vault, pin):
        return "upgrade"
    path = os.path.join(vault, "succession.json")
    if not os.path.exists(path):
        raise Failure(f"the manifest's identity {display_form(manifest.identity)} is not the pinned {pin}")
    with open(path, "rb") as f:
        succession = strict_json(f.read(), "succession.json")
    obj({"previous": obj({"vault_id": string, "quorum": QUORUM, "quorum_signing_key": string}),
         "signature": string})(succession, "succession.json")
    previous = succession["previous"]
    old_key = hex_canonical(previous["quorum_signing_key"], "the previous quorum signing key", 32)
    old_identity = identity(previous["vault_id"], previous["quorum"], old_key)
    if previous["vault_id"] != manifest.vault_id or not pin_matches(pin, old_identity):
        raise Failure(f"the manifest's identity {display_form(manifest.identity)} is not the pinned {pin}, "
                      "and succession.json does not start from it")
    message = (Canonical().field(SUCCESSION_TAG).field(manifest.vault_id).field(old_identity)
               .field(manifest.identity).bytes())
    if not ed25519_verifies(old_key, succession["signature"], message):
        raise Failure("succession.json is not signed by the previous quorum")
    return "succession"


def follows_upgrade(manifest, vault, pin):
    """Whether `upgrade.json` moves the format-1 fingerprint `pin` to the manifest's identity
    (docs/format.md, "Vault identity"): its format-1 manifest has that fingerprint, is of this
    vault with this quorum, and its audit key signed the move. False when there is no statement
    or it starts elsewhere; a statement that starts at the pin and does not verify fails."""
    path = os.path.join(vault, "upgrade.json")
    if not os.path.exists(path):
        return False
    with open(path, "rb") as f:
        statement = strict_json(f.read(), "upgrade.json")
    obj({"format": one_of(UPGRADE_FORMAT), "previous": MANIFEST, "signature": string})(
        statement, "upgrade.json")
    previous = statement["previous"]
    check_keys(previous)
    old = fingerprint_v1(previous)
    if not pin_matches(pin, old):
        return False
    if previous["vault_id"] != manifest.vault_id or previous["quorum"] != manifest.m["quorum"]:
        raise Failure("upgrade.json starts at the pinned fingerprint but is of another vault or quorum")
    message = (Canonical().field(UPGRADE_TAG).field(manifest.vault_id).field(old)
               .field(manifest.identity).bytes())
    key = bytes.fromhex(previous["audit"]["public_key"])
    if not ecdsa_verifies(key, statement["signature"], message):
        raise Failure("upgrade.json is not signed by the format-1 audit key for this identity")
    return True


def check_anchor(manifest, anchor_path):
    """A machine anchor (`anchors/<vault id>.json`): same vault and identity, a version not
    below the one it remembers, the same digest at the same version."""
    with open(anchor_path, "rb") as f:
        anchor = strict_json(f.read(), os.path.basename(anchor_path))
    obj({"format": one_of("breakglass-anchor/1"), "vault_id": string, "identity": string,
         "manifest": obj({"version": integer(U64), "digest": string})},
        {"audit": obj({"seq": integer(U64), "hash": string, "offset": integer(U64)},
                       {"signed_lines": boolean})})(anchor, "the anchor")
    if anchor["vault_id"] != manifest.vault_id:
        raise Failure("the anchor is for another vault")
    seen = anchor["manifest"]
    if manifest.version < seen["version"]:
        raise Failure(f"manifest version {manifest.version} is older than version {seen['version']} "
                      "this machine has seen (a rollback)")
    if manifest.version == seen["version"] and manifest.digest.hex() != seen["digest"]:
        raise Failure(f"manifest version {manifest.version} is not the one this machine has seen "
                      "at that version (a fork)")
    return anchor


def recorded_versions(entries):
    """The manifest versions the audit log records, in order: (line, version, digest,
    identity display form)."""
    out = []
    for number, entry in entries:
        details = entry.get("details") or {}
        if "manifest_version" in details or "manifest_digest" in details:
            version = details.get("manifest_version", "")
            if not version.isdigit() or "manifest_digest" not in details:
                raise Failure(f"audit line {number} records a manifest without a version and digest")
            out.append((number, int(version), details["manifest_digest"], details.get("fingerprint")))
    return out


def check_version_chain(manifest, entries):
    """The versions recorded never go down, a version recorded again (the upgrade of a log to
    signed lines records the version in force) has the digest recorded before, and vault.json
    is the last one recorded."""
    records = recorded_versions(entries)
    for (line_a, a, digest_a, _), (line_b, b, digest_b, _) in zip(records, records[1:]):
        if b < a:
            raise Failure(f"audit line {line_b} records manifest version {b} after version {a} "
                          f"(line {line_a}): versions only go up")
        if b == a and digest_b != digest_a:
            raise Failure(f"audit line {line_b} records manifest version {b} with another digest than "
                          f"line {line_a} (a fork)")
    if not records:
        raise Failure("the audit log records no manifest version")
    line, version, digest, fingerprint = records[-1]
    if manifest.version != version or manifest.digest.hex() != digest:
        raise Failure(f"vault.json is manifest version {manifest.version} (digest "
                      f"{manifest.digest.hex()[:16]}...), but the audit log records version {version} "
                      f"(digest {digest[:16]}...) at line {line} as the one in force")
    if fingerprint is not None and fingerprint != display_form(manifest.identity):
        raise Failure(f"audit line {line} records identity {fingerprint} for the manifest in force, "
                      f"not {display_form(manifest.identity)}")
    return [{"line": n, "version": v, "digest": d} for n, v, d, _ in records]
