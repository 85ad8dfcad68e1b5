#!/usr/bin/env python3
"""An independent reader and writer of breakglass's formats, written from docs/format.md alone.

It shares no code with the Rust implementation: only the specification and third-party
libraries (`cryptography`, `pyhpke`, `shamir-mnemonic`, `python-pkcs11`). Where the two
disagree, one of them (or the document) is wrong, and the interop tests fail.

Commands (each prints one JSON object on standard output; errors go to standard error with a
non-zero exit status):

  open   VAULT NAME --share FILE... [--module PATH] [--recovery-share FILE...] --out FILE [--unrecorded]
         Opens credential NAME: the quorum half with the shares, the token half with the
         enrolled SoftHSM/PKCS#11 token (logged in with the PIN the document derives from Q),
         or with the recovery key when recovery shares are given. Writes the plaintext to FILE
         (created 0600, never overwritten). First the audit log must verify and its latest
         signed record of NAME name this file's record digest; --unrecorded opens the file of a
         vault whose log has no signed line yet (made before them) as it is.
  seal   VAULT NAME --kind KIND --created TIME --in FILE [--meta KEY=VALUE...] --config DIR
         Seals FILE as credential NAME from the vault's public keys alone (format 2), writing
         credentials/NAME.json (0600, never over an existing file), and records it in a `seal`
         line signed by this machine's operator key (DIR/operators/<vault id>.key, DIR being
         breakglass's configuration directory), a cloud administrator.
  derive VAULT --share FILE... [--recovery-share FILE...]
         Recomputes every derivation from the shares: Q, the quorum public key, the token
         PINs, the recovery public key, each share's commitment; reports whether each matches
         the manifest.
  inspect FILE
         Parses an envelope strictly and prints H0, the stanza infos, the MAC input, the
         payload AAD and the record digest (public values only).
  kat    FILE
         Checks a known-answer vector file (test-vectors/envelope-kat.json): recomputes every
         intermediate value, opens the envelope with the fixed keys, and re-seals it with the
         fixed randomness to the same bytes.

  manifest VAULT [--pin FINGERPRINT] [--anchor FILE]
         Reads vault.json strictly and authenticates a certified manifest: the identity (held
         to the pin, or followed through succession.json), the certificate digest, the quorum's
         Ed25519 signature, the version against a machine anchor and against the versions the
         audit log records. Prints the identity, fingerprints, version and digest (for a
         format-1 manifest, its fingerprint only).
  audit-verify VAULT [--pin FINGERPRINT] [--anchor FILE] [--token-head --share FILE... [--module PATH]]
         Verifies audit.jsonl with the authenticated manifest's audit key (and retired keys)
         and operators (and retired operators): chain, sequence, checkpoints, the operators'
         signatures over format-2 lines and what each actor may record; first that the log
         continues the head a machine's anchor remembers, and the head the token holds (read
         through PKCS#11 with the PIN derived from the shares). Prints the report `breakglass
         audit verify --json` prints (and the format-1 lines not in the writer's canonical
         form, and the envelope each credential's latest signed record names); exit 1 when
         broken.
  audit-append VAULT --event NAME --config DIR [--credential C] [--detail K=V...]
               [--checkpoint --share FILE...] [--module PATH] [--forge WHAT]
         Appends a format-2 entry signed by this machine's operator key (as for seal) and, with
         --checkpoint, a checkpoint line, also signed by the operator, whose checkpoint the
         token's audit key signs through PKCS#11 (logged in with the PIN derived from the
         shares). --forge makes one thing wrong on purpose, for tests that require a reader to
         refuse it: prev, seq, vault-id, other-key, head (the chain and the token's signature);
         body, signature, stranger, unsigned (the entry's operator signature), checkpoint-stranger;
         retired (signed by this machine's key though its operator was removed); noncanonical
         (another encoding of the entry's body, signed as it is).

The modules beside this file: encoding.py (the document's conventions), vault_manifest.py
(the manifest and its authentication), audit_log.py (the audit log).

Exit status: 0 success; 1 a check failed (integrity, mismatch); 2 usage or a missing package.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import struct
import sys

sys.dont_write_bytecode = True  # nothing written beside the reader (a read-only checkout stays clean)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoding import (Canonical, Failure, b64_canonical, b64e, hex_canonical, pin_matches,  # noqa: E402
                      strict_json)

MISSING = []
try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, x25519
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    import audit_log
    import vault_manifest
except ImportError:  # pragma: no cover - reported below
    MISSING.append("cryptography")
try:
    from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey
except ImportError:  # pragma: no cover
    MISSING.append("pyhpke")
try:
    import shamir_mnemonic
    from shamir_mnemonic.share import Share as SlipShare
except ImportError:  # pragma: no cover
    MISSING.append("shamir-mnemonic")


# --------------------------------------------------------------------------------------------
# Constants, quoted from docs/format.md.

FORMAT_V1 = "breakglass-envelope/1"
FORMAT_V2 = "breakglass-envelope/2"
STANZA_TAG = b"breakglass-envelope/1 stanza"
PAYLOAD_TAG = b"breakglass-envelope/1 payload"
MAC_KEY_TAG = b"breakglass-envelope/1 hsm mac key"
MAC_INPUT_TAG = b"breakglass-envelope/1 hsm stanzas"
COMMITMENT_TAG = b"breakglass-share-commitment/1"
RECORD_TAG = b"breakglass-envelope-record/1"
PIN_V1 = "breakglass token pin/1"
PIN_V2 = "breakglass token pin/2"
KINDS = ("aws", "aws-root", "secret")


# --------------------------------------------------------------------------------------------
# The envelope.


ENVELOPE_FIELDS = ("format", "vault_id", "name", "kind", "created", "metadata", "hsm_stanzas",
                   "hsm_mac", "quorum_stanza", "payload")
STANZA_FIELDS = ("recipient", "enc", "ciphertext")
PAYLOAD_FIELDS = ("nonce", "ciphertext")


def envelope_bytes(env):
    """The canonical file bytes: the document's field order, 2-space pretty JSON, newline."""
    ordered = {}
    for key in ENVELOPE_FIELDS:
        if key == "hsm_mac" and env.get("hsm_mac") is None:
            continue
        ordered[key] = env[key]
    ordered["metadata"] = {k: env["metadata"][k] for k in sorted(env["metadata"], key=lambda s: s.encode())}
    ordered["hsm_stanzas"] = [{k: s[k] for k in STANZA_FIELDS} for s in env["hsm_stanzas"]]
    ordered["quorum_stanza"] = {k: env["quorum_stanza"][k] for k in STANZA_FIELDS}
    ordered["payload"] = {k: env["payload"][k] for k in PAYLOAD_FIELDS}
    return (json.dumps(ordered, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def parse_envelope(data):
    """Parses an envelope strictly, as the document requires of a reader."""

    env = strict_json(data, "the envelope")
    required = set(ENVELOPE_FIELDS) - {"hsm_mac"}
    if not isinstance(env, dict) or not required <= set(env) or not set(env) <= set(ENVELOPE_FIELDS):
        raise Failure("not an envelope (missing or unknown fields)")
    if envelope_bytes(env) != data:
        raise Failure("the file is not in canonical form")
    if env["format"] == FORMAT_V2:
        if env.get("hsm_mac") is None:
            raise Failure("hsm_mac is missing")
    elif env["format"] == FORMAT_V1:
        if "hsm_mac" in env:
            raise Failure("hsm_mac in a format 1 envelope")
    else:
        raise Failure(f"unknown format {env['format']!r}")
    if env["kind"] not in KINDS:
        raise Failure(f"unknown kind {env['kind']!r}")
    for stanza in env["hsm_stanzas"] + [env["quorum_stanza"]]:
        hex_canonical(stanza["recipient"], "a stanza recipient")
        b64_canonical(stanza["enc"], "a stanza's enc")
        b64_canonical(stanza["ciphertext"], "a stanza's ciphertext")
    if env.get("hsm_mac") is not None and len(b64_canonical(env["hsm_mac"], "hsm_mac")) != 32:
        raise Failure("hsm_mac is not 32 bytes")
    if len(b64_canonical(env["payload"]["nonce"], "the payload nonce")) != 12:
        raise Failure("the payload nonce is not 12 bytes")
    b64_canonical(env["payload"]["ciphertext"], "the payload")
    return env


def header_hash(env):
    c = Canonical()
    for key in ("format", "vault_id", "name", "kind", "created"):
        c.field(env[key])
    c.number(len(env["metadata"]))
    for key in sorted(env["metadata"], key=lambda s: s.encode()):
        c.field(key).field(env["metadata"][key])
    return c.sha256()


def stanza_info(h0, role, recipient):
    return Canonical().field(STANZA_TAG).field(h0).field(role).field(recipient).bytes()


def stanza_fields(c, stanza):
    # The stanza's three fields as their text in the file (hex and base64), not decoded.
    return c.field(stanza["recipient"]).field(stanza["enc"]).field(stanza["ciphertext"])


def payload_aad(env, h0):
    c = Canonical().field(PAYLOAD_TAG).field(h0)
    if env["format"] == FORMAT_V1:
        c.number(len(env["hsm_stanzas"]))
        for stanza in env["hsm_stanzas"]:
            stanza_fields(c, stanza)
    stanza_fields(c, env["quorum_stanza"])
    return c.sha256()


def mac_input(h0, stanzas):
    c = Canonical().field(MAC_INPUT_TAG).field(h0).number(len(stanzas))
    for stanza in stanzas:
        stanza_fields(c, stanza)
    return c.bytes()


def hsm_mac(fk_h, h0, stanzas):
    key = hmac.new(fk_h, MAC_KEY_TAG, hashlib.sha256).digest()
    return hmac.new(key, mac_input(h0, stanzas), hashlib.sha256).digest()


def record_digest(env):
    """What a signed audit line records of an envelope (docs: "Envelope records"): hex SHA-256
    of Canonical[tag, H0, the quorum stanza's three members and the payload's two, as text]."""
    c = Canonical().field(RECORD_TAG).field(header_hash(env))
    stanza_fields(c, env["quorum_stanza"])
    c.field(env["payload"]["nonce"]).field(env["payload"]["ciphertext"])
    return c.sha256().hex()


# --------------------------------------------------------------------------------------------
# HPKE (RFC 9180, base mode, single shot). Sealing and the quorum side use pyhpke; the token
# side is decapsulated here from the token's raw ECDH output, since the private key never
# leaves the token.

P256, X25519 = "P-256", "X25519"
KEM_IDS = {P256: 0x0010, X25519: 0x0020}


def suite(kem):
    kem_id = KEMId.DHKEM_P256_HKDF_SHA256 if kem == P256 else KEMId.DHKEM_X25519_HKDF_SHA256
    return CipherSuite.new(kem_id, KDFId.HKDF_SHA256, AEADId.AES256_GCM)


def _hmac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def labeled_extract(suite_id, salt, label, ikm):
    return _hmac(salt or bytes(32), b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id, prk, label, info, length):
    labeled = struct.pack(">H", length) + b"HPKE-v1" + suite_id + label + info
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = _hmac(prk, block + labeled + bytes([counter]))
        out += block
        counter += 1
    return out[:length]


def hpke_open_from_dh(kem, dh, enc, recipient, info, ciphertext):
    """Decap from DH(skR, enc) (RFC 9180 §4.1), then the base-mode key schedule and AES-256-GCM."""
    kem_suite = b"KEM" + struct.pack(">H", KEM_IDS[kem])
    eae_prk = labeled_extract(kem_suite, b"", b"eae_prk", dh)
    shared = labeled_expand(kem_suite, eae_prk, b"shared_secret", enc + recipient, 32)
    hpke_suite = b"HPKE" + struct.pack(">HHH", KEM_IDS[kem], 0x0001, 0x0002)
    ks_context = (b"\x00" + labeled_extract(hpke_suite, b"", b"psk_id_hash", b"")
                  + labeled_extract(hpke_suite, b"", b"info_hash", info))
    secret = labeled_extract(hpke_suite, shared, b"secret", b"")
    key = labeled_expand(hpke_suite, secret, b"key", ks_context, 32)
    nonce = labeled_expand(hpke_suite, secret, b"base_nonce", ks_context, 12)
    return AESGCM(key).decrypt(nonce, ciphertext, b"")


def derive_key_pair(kem, ikm):
    return suite(kem).kem.derive_key_pair(ikm)


def public_bytes(key_pair):
    return key_pair.public_key.to_public_bytes()


def hpke_seal(kem, recipient, info, plaintext, ephemeral=None):
    s = suite(kem)
    pk = s.kem.deserialize_public_key(recipient)
    enc, context = s.create_sender_context(pk, info=info, eks=ephemeral)
    return enc, context.seal(plaintext, aad=b"")


def hpke_open(kem, private_key, enc, info, ciphertext):
    s = suite(kem)
    return s.create_recipient_context(enc, private_key, info=info).open(ciphertext, aad=b"")


# --------------------------------------------------------------------------------------------
# Opening and sealing.


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def open_quorum_half(env, h0, quorum_pair):
    stanza = env["quorum_stanza"]
    recipient = public_bytes(quorum_pair)
    if stanza["recipient"] != recipient.hex():
        raise Failure("the quorum stanza is for another quorum key")
    try:
        half = hpke_open(X25519, quorum_pair.private_key, base64.b64decode(stanza["enc"]),
                         stanza_info(h0, "quorum", recipient), base64.b64decode(stanza["ciphertext"]))
    except Exception:
        raise Failure("the quorum stanza does not open")
    if len(half) != 32:
        raise Failure("the quorum stanza holds a key of the wrong length")
    return half


def open_hsm_half(env, h0, recipient, dh_of):
    """The token half, from the stanza for `recipient`, `dh_of(enc)` being DH(skR, enc)."""
    stanza = next((s for s in env["hsm_stanzas"] if s["recipient"] == recipient.hex()), None)
    if stanza is None:
        raise Failure("no stanza for this token")
    enc = base64.b64decode(stanza["enc"])
    try:
        half = hpke_open_from_dh(P256, dh_of(enc), enc, recipient, stanza_info(h0, "hsm", recipient),
                                 base64.b64decode(stanza["ciphertext"]))
    except Failure:
        raise
    except Exception:
        raise Failure("the hsm stanza does not open")
    if len(half) != 32:
        raise Failure("the hsm stanza holds a key of the wrong length")
    if env["format"] == FORMAT_V2:
        if not hmac.compare_digest(hsm_mac(half, h0, env["hsm_stanzas"]), base64.b64decode(env["hsm_mac"])):
            raise Failure("hsm_mac does not verify")
    return half


def open_payload(env, h0, fk_h, fk_q):
    nonce = base64.b64decode(env["payload"]["nonce"])
    try:
        return AESGCM(xor(fk_h, fk_q)).decrypt(nonce, base64.b64decode(env["payload"]["ciphertext"]),
                                               payload_aad(env, h0))
    except Exception:
        raise Failure("the payload does not decrypt")


def seal(header, payload, hsm_keys, quorum_key, randomness=None):
    """A format 2 envelope. `randomness` (the known-answer vectors) fixes FK, FK_h, the nonce and
    the ephemeral keys; otherwise they come from the OS."""
    r = randomness or {
        "file_key": os.urandom(32), "hsm_half": os.urandom(32), "nonce": os.urandom(12),
        "hsm_ephemeral": [None] * len(hsm_keys), "quorum_ephemeral": None,
    }
    env = dict(header)
    env["format"] = FORMAT_V2
    h0 = header_hash(env)
    fk, fk_h = r["file_key"], r["hsm_half"]
    fk_q = xor(fk, fk_h)
    stanzas = []
    for key, eph in zip(hsm_keys, r["hsm_ephemeral"]):
        enc, ct = hpke_seal(P256, key, stanza_info(h0, "hsm", key), fk_h, eph)
        stanzas.append({"recipient": key.hex(), "enc": b64e(enc), "ciphertext": b64e(ct)})
    enc, ct = hpke_seal(X25519, quorum_key, stanza_info(h0, "quorum", quorum_key), fk_q, r["quorum_ephemeral"])
    env["hsm_stanzas"] = stanzas
    env["hsm_mac"] = b64e(hsm_mac(fk_h, h0, stanzas))
    env["quorum_stanza"] = {"recipient": quorum_key.hex(), "enc": b64e(enc), "ciphertext": b64e(ct)}
    aad = payload_aad(env, h0)
    env["payload"] = {"nonce": b64e(r["nonce"]), "ciphertext": b64e(AESGCM(fk).encrypt(r["nonce"], payload, aad))}
    return env


# --------------------------------------------------------------------------------------------
# Shares, derivations, the token.


def mnemonic_of(path):
    with open(path, encoding="utf-8") as f:
        words = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    return " ".join(words)


def combine(files):
    mnemonics = [mnemonic_of(p) for p in files]
    return shamir_mnemonic.combine_mnemonics(mnemonics, b""), mnemonics


def share_commitment(vault_id, salt, mnemonic):
    share = SlipShare.from_mnemonic(mnemonic)
    c = Canonical().field(COMMITMENT_TAG).field(vault_id).field(salt)
    c.number(share.identifier).number(share.group_index).number(share.index)
    c.number(share.member_threshold).field(share.value)
    return c.sha256().hex(), share


def token_pin(q, vault_id, role):
    return hmac.new(q, f"{PIN_V1}\n{vault_id}\n{role}".encode(), hashlib.sha256).digest()[:16].hex()


def token_pin_v2(q, vault_id, serial, role, length=32):
    """pin/2: HKDF-SHA256(ikm = Q, salt = vault id, info = Canonical[domain, vault id, serial
    (trimmed), role]) in hex, cut to the token's length (32 where its maximum allows)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    info = Canonical().field(PIN_V2).field(vault_id).field(serial.strip()).field(role).bytes()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=vault_id.encode(), info=info).derive(q)
    return key.hex()[:length]


def load_pkcs11():
    try:
        import pkcs11
    except ImportError:
        fail_missing(["python-pkcs11"])
    return pkcs11


class Token:
    """An enrolled token through PKCS#11: login with the user PIN, ECDH with the sealing key."""

    def __init__(self, module, serial, pin, key_id):
        pkcs11 = load_pkcs11()
        self.pkcs11 = pkcs11
        lib = pkcs11.lib(module)
        tokens = [t for t in lib.get_tokens() if t.serial.decode("ascii", "replace").strip() == serial.strip()]
        if len(tokens) != 1:
            raise Failure(f"token with serial {serial!r}: found {len(tokens)}")
        self.session = tokens[0].open(user_pin=pin)
        self.key_id = key_id

    def public_key(self):
        from pkcs11 import Attribute, ObjectClass
        point = self.session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=self.key_id)[Attribute.EC_POINT]
        # CKA_EC_POINT is the DER OCTET STRING of the uncompressed point: 04 41 || 65 bytes.
        if len(point) == 67 and point[:2] == b"\x04\x41":
            point = point[2:]
        return bytes(point)

    def dh(self, peer):
        from pkcs11 import KDF, Attribute, KeyType, Mechanism, ObjectClass
        private = self.session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=self.key_id)
        derived = private.derive_key(
            KeyType.GENERIC_SECRET, 256, mechanism=Mechanism.ECDH1_DERIVE,
            mechanism_param=(KDF.NULL, None, peer),
            template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True, Attribute.TOKEN: False})
        value = bytes(derived[Attribute.VALUE])
        derived.destroy()
        return value

    def sign(self, key_id, message):
        """ECDSA P-256 over SHA-256(message) with the private key `key_id`: the 64-byte r || s."""
        from pkcs11 import Mechanism, ObjectClass
        private = self.session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id)
        return bytes(private.sign(hashlib.sha256(message).digest(), mechanism=Mechanism.ECDSA))

    def data_object(self, label):
        """The value of the private data object `label`, or None when the token has none."""
        from pkcs11 import Attribute, ObjectClass
        found = list(self.session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: label}))
        if len(found) > 1:
            raise Failure(f"the token holds {len(found)} data objects labelled {label!r}")
        return bytes(found[0][Attribute.VALUE]) if found else None

    def close(self):
        self.session.close()


def open_token(vault, hsm, module, pin, key_id):
    """The enrolled token `hsm`. A development token's SoftHSM configuration names its token
    directory by absolute path (breakglass rewrites it whenever it opens the vault); a copy
    made here, naming `tokens/` beside it, keeps a moved vault usable without changing it."""
    if hsm.get("softhsm_conf"):
        import atexit
        import tempfile
        tokens = os.path.join(os.path.abspath(os.path.dirname(os.path.join(vault, hsm["softhsm_conf"]))), "tokens")
        fd, conf = tempfile.mkstemp(prefix="breakglass-format-softhsm", suffix=".conf")
        with os.fdopen(fd, "w") as f:
            f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
                    "slots.removable = false\n")
        atexit.register(os.unlink, conf)
        os.environ["SOFTHSM2_CONF"] = conf
    return Token(module or hsm["module"], hsm["serial"], pin, key_id)


def read_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read())


def refuse_unfinished(vault):
    """A vault whose `breakglass init` did not finish (`init-incomplete` present) is refused:
    its shares are not all handed out, so nothing may be sealed in it or opened from it."""
    if os.path.exists(os.path.join(vault, "init-incomplete")):
        raise Failure(f"{vault} holds a vault whose `breakglass init` did not finish: "
                      "remove it and run init again")


def read_manifest(vault):
    """The manifest in vault.json, read strictly: for a certified manifest, the manifest inside
    it once the quorum's signature over the whole document verifies; a format-1 file as it is
    (it carries no signature: its fingerprint is what a pin would hold)."""
    refuse_unfinished(vault)
    manifest = vault_manifest.Manifest(os.path.join(vault, "vault.json"))
    if manifest.format == vault_manifest.CERTIFIED_FORMAT:
        manifest.authenticate()
    return manifest.m


def quorum_pin(hsm, q, vault_id, role):
    """The PIN the quorum derives for one enrolled token, by the enrolment's derivation."""
    if hsm.get("pin_derivation") == "per-token/2":
        return token_pin_v2(q, vault_id, hsm["serial"], role)
    return token_pin(q, vault_id, role)


def user_pin(hsm, q, vault_id):
    source = hsm["pin"]
    kind = source["source"]
    if kind == "quorum":
        return quorum_pin(hsm, q, vault_id, "user")
    if kind == "env":
        return os.environ[source["var"]]
    if kind == "file":
        with open(source["path"], encoding="utf-8") as f:
            return f.readline().rstrip("\n")
    raise Failure(f"PIN source {kind!r} is not supported here")


def write_new(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# An operator key file: PKCS#8 v2 DER of an Ed25519 key (RFC 8410), this prefix, the 32-byte
# seed, the middle, the 32-byte public key (as breakglass writes it, 0600).
PKCS8_PREFIX = bytes.fromhex("3051020101300506032b657004220420")
PKCS8_MIDDLE = bytes.fromhex("812100")


class OperatorKey:
    """This machine's operator key for a vault: `<config>/operators/<vault id>.key`."""

    def __init__(self, config, vault_id):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        self.path = os.path.join(config, "operators", f"{vault_id}.key")
        try:
            mode = os.stat(self.path).st_mode & 0o777
        except FileNotFoundError:
            raise Failure(f"no operator key for vault {vault_id} in {config} ({self.path})")
        if mode & 0o077:
            raise Failure(f"{self.path} is readable by others (mode {mode:o}): an operator key must be 0600")
        with open(self.path, "rb") as f:
            der = f.read()
        if len(der) != 83 or der[:16] != PKCS8_PREFIX or der[48:51] != PKCS8_MIDDLE:
            raise Failure(f"{self.path} is not an Ed25519 PKCS#8 v2 key")
        self.key = Ed25519PrivateKey.from_private_bytes(der[16:48])
        self.public_key = self.key.public_key().public_bytes(serialization.Encoding.Raw,
                                                              serialization.PublicFormat.Raw).hex()
        if self.public_key != der[51:].hex():
            raise Failure(f"{self.path}: its public key is not its seed's")

    def operator(self, manifest, role=None, retired=False):
        """The operator of `manifest` whose key this is (holding `role` when given); with
        `retired`, also a retired operator (whose lines after their last_line no reader
        accepts: for tests that require that)."""
        candidates = manifest.document["operators"] + (manifest.document.get("retired_operators") or []
                                                       if retired else [])
        found = next((o for o in candidates if o["public_key"] == self.public_key), None)
        if found is None:
            raise Failure(f"{self.path} is the key of no operator of vault {manifest.vault_id}")
        if role is not None and role not in found["roles"]:
            raise Failure(f"operator {found['name']} is no {role.replace('_', ' ')}")
        return found["name"]

    def sign(self, message):
        return self.key.sign(message)


def now():
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def certified_for_writing(vault):
    """The authenticated certified manifest and the log's report, for appending: the log must
    verify, have no torn tail, and have signed lines already (a log made before them is
    upgraded by breakglass, with a quorum and a token)."""
    manifest = authenticated(vault)
    if manifest.format != vault_manifest.CERTIFIED_FORMAT:
        raise Failure("vault.json is a format-1 manifest: it has no operators to sign a line")
    report, _, _ = verify_log(vault, manifest)
    if not audit_log.intact(report) or report["torn_tail"]:
        raise Failure("the audit log is broken or ends with a torn write: nothing is appended to it")
    if not report["signed_lines"]:
        raise Failure("the audit log has no signed lines yet: `breakglass upgrade` signs its history first")
    return manifest, report


class WritersLock:
    """breakglass's writers' lock (docs: "Vault directory"): an exclusive `flock` on
    `vault.lock`, held from reading the log's head to appending after it, so that no writer
    appends in between. Waits at most 30 seconds, as breakglass does."""

    def __init__(self, vault):
        self.path = os.path.join(vault, "vault.lock")

    def __enter__(self):
        import fcntl
        import time
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + 30
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise Failure(f"{self.path}: another writer holds the vault's lock")
                time.sleep(0.05)

    def __exit__(self, *exc):
        os.close(self.fd)


def append_lines(vault, lines):
    fd = os.open(os.path.join(vault, "audit.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(b"".join(line + b"\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())


def check_recorded(vault, manifest, name, path, env, unrecorded=False):
    """The envelope read from `path` must be the one the latest signed record of `name` names,
    in a log that verifies throughout (docs: "Envelope records"). A log with no signed line (a
    vault made before them) records nothing: refused unless `unrecorded` (then None)."""
    report, _, records = verify_log(vault, manifest)
    if not audit_log.intact(report):
        where = report["first_problem"] or {"line": report["bad_signature"],
                                             "reason": "its checkpoint signature does not verify"}
        raise Failure(f"the audit log does not verify at line {where['line']} ({where['reason']}): "
                      "no envelope is opened until it does")
    found = record_digest(env)
    if not report["signed_lines"]:
        if unrecorded:
            return None
        raise Failure(f"the audit log of vault {manifest.vault_id} has no signed lines (made before them): "
                      f"nothing says which envelope of {name} is genuine; `breakglass upgrade` records "
                      "them (--unrecorded opens this file as it is)")
    expected = records.get(name)
    if expected != found:
        said = (f"the last signed record of {name} is {expected}" if expected is not None
                else f"no signed line records {name}")
        raise Failure(f"{path}: credential {name} is not the envelope the audit log records for it "
                      f"({said}; this file's digest is {found})")
    return found


# --------------------------------------------------------------------------------------------
# Commands.


def credential_name(name):
    """A credential's name (docs: "Vault directory"): `[a-z0-9][a-z0-9._-]{0,63}`."""
    import re
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", name):
        raise Failure(f"{name!r} is not a credential name ([a-z0-9][a-z0-9._-]{{0,63}})")
    return name


def cmd_open(args):
    credential_name(args.name)
    refuse_unfinished(args.vault)
    document = vault_manifest.Manifest(os.path.join(args.vault, "vault.json"))
    if document.format == vault_manifest.CERTIFIED_FORMAT:
        document.authenticate()
    manifest = document.m
    vault_id = manifest["vault_id"]
    path = os.path.join(args.vault, "credentials", f"{args.name}.json")
    with open(path, "rb") as f:
        env = parse_envelope(f.read())
    if env["vault_id"] != vault_id or env["name"] != args.name:
        raise Failure("the envelope belongs to another vault or credential")
    recorded = check_recorded(args.vault, document, args.name, path, env, args.unrecorded)
    h0 = header_hash(env)
    q, _ = combine(args.share)
    quorum = derive_key_pair(X25519, q)
    if public_bytes(quorum).hex() != manifest["quorum"]["public_key"]:
        raise Failure("the shares do not derive this vault's quorum key")
    fk_q = open_quorum_half(env, h0, quorum)
    if args.recovery_share:
        r, _ = combine(args.recovery_share)
        recovery = derive_key_pair(P256, r)
        if public_bytes(recovery).hex() != manifest["recovery"]["public_key"]:
            raise Failure("the recovery shares do not derive this vault's recovery key")
        sk = ec.derive_private_key(int.from_bytes(recovery.private_key.to_private_bytes(), "big"), ec.SECP256R1())

        def dh_of(enc):
            return sk.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), enc))

        fk_h = open_hsm_half(env, h0, public_bytes(recovery), dh_of)
        via = "recovery key"
    else:
        hsm = manifest["hsms"][0]
        token = open_token(args.vault, hsm, args.module, user_pin(hsm, q, vault_id),
                           bytes.fromhex(hsm["seal_key_id"]))
        try:
            recipient = token.public_key()
            if recipient.hex() != hsm["seal_public_key"]:
                raise Failure("the token's sealing key is not the enrolled one")
            fk_h = open_hsm_half(env, h0, recipient, token.dh)
        finally:
            token.close()
        via = f"token {hsm['label']}"
    plaintext = open_payload(env, h0, fk_h, fk_q)
    write_new(args.out, plaintext)
    return {"opened": args.name, "format": env["format"], "via": via, "bytes": len(plaintext),
            "recorded": recorded}


def cmd_seal(args):
    """Seals from the public keys, and records the envelope as breakglass does: a `seal` line
    signed by this machine's operator (a cloud administrator) naming its record digest, appended
    before the file takes its place."""
    credential_name(args.name)
    document, _ = certified_for_writing(args.vault)
    key = OperatorKey(args.config, document.vault_id)
    operator = key.operator(document, "cloud_administrator")
    manifest = document.m
    hsm_keys = [bytes.fromhex(h["seal_public_key"]) for h in manifest["hsms"]]
    if manifest.get("recovery"):
        hsm_keys.append(bytes.fromhex(manifest["recovery"]["public_key"]))
    metadata = dict(m.split("=", 1) for m in args.meta)
    with open(args.infile, "rb") as f:
        payload = f.read()
    header = {"vault_id": manifest["vault_id"], "name": args.name, "kind": args.kind,
              "created": args.created, "metadata": metadata}
    env = seal(header, payload, hsm_keys, bytes.fromhex(manifest["quorum"]["public_key"]))
    data = envelope_bytes(env)
    parse_envelope(data)
    final = os.path.join(args.vault, "credentials", f"{args.name}.json")
    staged = os.path.join(args.vault, "credentials", f".{args.name}.json.python-staged")
    with WritersLock(args.vault):
        if os.path.exists(final):
            raise Failure(f"{final} exists: a credential is never overwritten here")
        write_new(staged, data)
        try:
            _, report = certified_for_writing(args.vault)
            digest = record_digest(env)
            body = audit_log.new_body(report["entries"] + 1, now(), "seal", operator, report["head"], args.name,
                                      {audit_log.ENVELOPE_DETAIL: digest, "kind": args.kind, "replace": "false"})
            line = audit_log.signed_line(body, document.vault_id, operator, key.sign)
            append_lines(args.vault, [line])
            os.link(staged, final)
        finally:
            os.unlink(staged)
    return {"sealed": args.name, "stanzas": len(hsm_keys), "record_digest": digest, "operator": operator,
            "line": report["entries"] + 1}


def cmd_derive(args):
    manifest = read_manifest(args.vault)
    vault_id = manifest["vault_id"]
    q, mnemonics = combine(args.share)
    out = {
        "quorum_public_key": public_bytes(derive_key_pair(X25519, q)).hex(),
        "pins": {role: quorum_pin(manifest["hsms"][0], q, vault_id, role) for role in ("user", "so")},
    }
    out["quorum_key_matches"] = out["quorum_public_key"] == manifest["quorum"]["public_key"]
    out["commitments"] = commitments(manifest["quorum"], vault_id, mnemonics)
    if args.recovery_share:
        r, recovery_mnemonics = combine(args.recovery_share)
        out["recovery_public_key"] = public_bytes(derive_key_pair(P256, r)).hex()
        out["recovery_key_matches"] = out["recovery_public_key"] == manifest["recovery"]["public_key"]
        out["recovery_commitments"] = commitments(manifest["recovery"], vault_id, recovery_mnemonics)
    return out


def commitments(share_set, vault_id, mnemonics):
    found = {}
    for mnemonic in mnemonics:
        share = SlipShare.from_mnemonic(mnemonic)
        member = share_set["groups"][share.group_index]["members"][share.index]
        commitment, _ = share_commitment(vault_id, bytes.fromhex(member["commitment_salt"]), mnemonic)
        found[member["name"]] = commitment == member["commitment"] and share.identifier == share_set["identifier"]
    return found


def cmd_inspect(args):
    with open(args.file, "rb") as f:
        env = parse_envelope(f.read())
    h0 = header_hash(env)
    return {
        "format": env["format"], "h0": h0.hex(),
        "stanza_infos": [stanza_info(h0, "hsm", bytes.fromhex(s["recipient"])).hex() for s in env["hsm_stanzas"]]
        + [stanza_info(h0, "quorum", bytes.fromhex(env["quorum_stanza"]["recipient"])).hex()],
        "mac_input": mac_input(h0, env["hsm_stanzas"]).hex() if env["format"] == FORMAT_V2 else None,
        "payload_aad": payload_aad(env, h0).hex(),
        "record_digest": record_digest(env),
    }


def cmd_kat(args):
    vectors = read_json(args.file)
    results = []
    for v in vectors["vectors"]:
        results.append(check_vector(v))
    return {"vectors": len(results), "checked": results}


def check_vector(v):
    x = {k: bytes.fromhex(val) if isinstance(val, str) else val for k, val in v["keys"].items()}
    data = v["envelope"].encode("utf-8")
    env = parse_envelope(data)
    h0 = header_hash(env)
    expect = v["expected"]

    def same(name, value):
        if value.hex() != expect[name]:
            raise Failure(f"{v['description']}: {name} is {value.hex()}, the vector says {expect[name]}")

    same("h0", h0)
    same("payload_aad", payload_aad(env, h0))
    quorum = derive_key_pair(X25519, x["quorum_ikm"])
    hsm_sks = [ec.derive_private_key(int.from_bytes(sk, "big"), ec.SECP256R1()) for sk in
               [bytes.fromhex(s) for s in v["keys"]["hsm_private_keys"]]]
    fk_q = open_quorum_half(env, h0, quorum)
    halves = []
    for sk in hsm_sks:
        recipient = sk.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)

        def dh_of(enc, sk=sk):
            return sk.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), enc))

        halves.append(open_hsm_half(env, h0, recipient, dh_of))
    if any(h != halves[0] for h in halves):
        raise Failure(f"{v['description']}: the token stanzas hold different halves")
    same("hsm_half", halves[0])
    same("file_key", xor(halves[0], fk_q))
    if env["format"] == FORMAT_V2:
        same("hsm_mac", hsm_mac(halves[0], h0, env["hsm_stanzas"]))
    plaintext = open_payload(env, h0, halves[0], fk_q)
    same("plaintext", plaintext)
    resealed = None
    if env["format"] == FORMAT_V2:
        s_p, s_x = suite(P256), suite(X25519)
        randomness = {
            "file_key": x["file_key"], "hsm_half": x["hsm_half"], "nonce": x["nonce"],
            "hsm_ephemeral": [s_p.kem.derive_key_pair(bytes.fromhex(i)) for i in v["keys"]["hsm_ephemeral_ikm"]],
            "quorum_ephemeral": s_x.kem.derive_key_pair(x["quorum_ephemeral_ikm"]),
        }
        header = {k: env[k] for k in ("vault_id", "name", "kind", "created", "metadata")}
        recipients = [bytes.fromhex(s["recipient"]) for s in env["hsm_stanzas"]]
        again = envelope_bytes(seal(header, plaintext, recipients, public_bytes(quorum), randomness))
        if again != data:
            raise Failure(f"{v['description']}: re-sealing with the vector's randomness gives other bytes")
        resealed = True
    return {"description": v["description"], "format": env["format"], "resealed": resealed}


def authenticated(vault, pin=None):
    """vault.json read strictly and its quorum signature checked (and its identity held to
    `pin` when given)."""
    refuse_unfinished(vault)
    manifest = vault_manifest.Manifest(os.path.join(vault, "vault.json"))
    if manifest.format == vault_manifest.VAULT_FORMAT:
        # A vault of the previous release: nothing signs its manifest; only a pin of its
        # format-1 fingerprint vouches for the audit key it names.
        if not pin or not pin_matches(pin, manifest.fingerprint_v1):
            raise Failure("vault.json is a format-1 manifest: pass --pin with its fingerprint "
                          "(as its share files carry it) to trust the keys it names")
        return manifest
    manifest.compute()
    if pin:
        vault_manifest.check_pin(manifest, vault, pin)
    manifest.authenticate()
    return manifest


def read_log(vault):
    path = os.path.join(vault, "audit.jsonl")
    if not os.path.exists(path):
        return b""
    with open(path, "rb") as f:
        return f.read()


def audit_keys(m):
    retired = [(r["last_line"], bytes.fromhex(r["public_key"])) for r in m.get("retired_audit_keys") or []]
    return bytes.fromhex(m["audit"]["public_key"]), retired


def verify_log(vault, manifest):
    """The log walked with the manifest's audit keys and, for a certified manifest, its
    operators: (report, entries, records)."""
    key, retired = audit_keys(manifest.m)
    return audit_log.verify(read_log(vault), manifest.vault_id, key, retired, manifest.signers())


def cmd_manifest(args):
    refuse_unfinished(args.vault)
    manifest = vault_manifest.Manifest(os.path.join(args.vault, "vault.json"))
    if manifest.format != vault_manifest.CERTIFIED_FORMAT:
        return manifest.summary()
    manifest.compute()
    how = vault_manifest.check_pin(manifest, args.vault, args.pin) if args.pin else None
    manifest.authenticate()
    out = manifest.summary()
    if how:
        out["pin"] = how
    if args.anchor:
        vault_manifest.check_anchor(manifest, args.anchor)
        out["anchor"] = "not behind"
    report, entries, _ = verify_log(args.vault, manifest)
    if not audit_log.intact(report):
        raise Failure("the audit log is broken (run audit-verify): the versions it records cannot be trusted")
    out["versions_recorded"] = vault_manifest.check_version_chain(manifest, entries)
    return out


def cmd_audit_verify(args):
    manifest = authenticated(args.vault, args.pin)
    data = read_log(args.vault)
    if args.anchor:
        anchor = read_json(args.anchor)
        if anchor.get("vault_id") != manifest.vault_id:
            raise Failure("the anchor is for another vault")
        if anchor.get("audit"):
            audit_log.check_head(data, anchor["audit"], "this machine's anchor")
    token_head = None
    if args.token_head:
        m = manifest.m
        q, _ = combine(args.share)
        hsm = next(h for h in m["hsms"] if h["label"] == m["audit"]["token"])
        token = open_token(args.vault, hsm, args.module, user_pin(hsm, q, manifest.vault_id), None)
        try:
            value = token.data_object(f"breakglass:{manifest.vault_id}:audit-head")
        finally:
            token.close()
        if value is not None:
            token_head = audit_log.parse_token_head(value, manifest.vault_id)
            audit_log.check_head(data, token_head, f"token {hsm['label']}")
    report, _, records = verify_log(args.vault, manifest)
    report["envelope_records"] = records
    if args.token_head:
        report["token_head"] = token_head
    if not audit_log.intact(report):
        where = report["first_problem"] or {"line": report["bad_signature"],
                                             "reason": "the checkpoint's signature does not verify"}
        print(json.dumps(report, indent=2))
        raise Failure(f"audit.jsonl: line {where['line']}: {where['reason']}")
    return report


# Token side (the checkpoint's ECDSA signature), then operator side (the Ed25519 signature of a
# format-2 line).
CHECKPOINT_FORGERIES = ("seq", "vault-id", "other-key", "head")
FORGERIES = ("prev",) + CHECKPOINT_FORGERIES + ("body", "signature", "stranger", "unsigned",
                                                 "checkpoint-stranger", "retired", "noncanonical")


def cmd_audit_append(args):
    """Appends a format-2 entry signed by this machine's operator and, with --checkpoint, a
    checkpoint line (signed by the operator too) whose checkpoint the token's audit key signs;
    with --forge, one thing wrong on purpose (for the tests that require a reader to refuse
    it)."""
    with WritersLock(args.vault):
        return append_entry(args)


def append_entry(args):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    manifest, report = certified_for_writing(args.vault)
    m = manifest.m
    key = OperatorKey(args.config, manifest.vault_id)
    operator = key.operator(manifest, audit_log.required_role(args.event), retired=args.forge == "retired")
    stranger = Ed25519PrivateKey.generate()
    seq, head = report["entries"], report["head"]
    time = now()
    details = dict(d.split("=", 1) for d in args.detail)
    prev = hashlib.sha256(b"not the line before").hexdigest() if args.forge == "prev" else head
    body = audit_log.new_body(seq + 1, time, args.event, operator, prev, args.credential, details)
    if args.forge == "unsigned":
        entry = audit_log.body_bytes(body)
    elif args.forge == "noncanonical":
        # Another encoding of the same body (a space), signed as it is.
        data = audit_log.body_bytes(body).replace(b'"v":2,', b'"v": 2,', 1)
        entry = audit_log.signed_bytes(data, seq + 1, prev, manifest.vault_id, operator, key.sign)
    else:
        sign = stranger.sign if args.forge == "stranger" else key.sign
        entry = audit_log.signed_line(body, manifest.vault_id, operator, sign)
    if args.forge == "body":
        # The signed line with its event changed after signing.
        entry = entry.replace(b'"event":"', b'"event":"x', 1)
    elif args.forge == "signature":
        at = entry.rindex(audit_log.SIGNATURE_MEMBER) + len(audit_log.SIGNATURE_MEMBER)
        entry = entry[:at] + (b"B" if entry[at:at + 1] == b"A" else b"A") + entry[at + 1:]
    lines = [entry]
    if args.checkpoint or args.forge in CHECKPOINT_FORGERIES + ("checkpoint-stranger",):
        key_id = m["audit"]["key_id"]
        signed_head = head if args.forge == "head" else audit_log.line_hash(lines[0])
        signed_seq = {"seq": seq + 2, "head": seq}.get(args.forge, seq + 1)
        vault_id = "0" * 32 if args.forge == "vault-id" else manifest.vault_id
        message = audit_log.checkpoint_message(vault_id, signed_seq, signed_head)
        if args.forge == "other-key":
            # A well-formed signature by a P-256 key that is not the vault's audit key.
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
            r, s = decode_dss_signature(ec.generate_private_key(ec.SECP256R1()).sign(message, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            q, _ = combine(args.share)
            hsm = next(h for h in m["hsms"] if h["label"] == m["audit"]["token"])
            token = open_token(args.vault, hsm, args.module, user_pin(hsm, q, manifest.vault_id), None)
            try:
                signature = token.sign(bytes.fromhex(key_id), message)
            finally:
                token.close()
        checkpoint = {"head": signed_head, "key_id": key_id, "signature": b64e(signature)}
        body = audit_log.new_body(seq + 2, time, "checkpoint", operator, audit_log.line_hash(lines[0]),
                                  checkpoint=checkpoint)
        sign = stranger.sign if args.forge == "checkpoint-stranger" else key.sign
        lines.append(audit_log.signed_line(body, manifest.vault_id, operator, sign))
    append_lines(args.vault, lines)
    return {"appended": list(range(seq + 1, seq + 1 + len(lines))), "head": audit_log.line_hash(lines[-1]),
            "operator": operator}


def fail_missing(packages):
    print(f"breakglass_format: missing Python package(s) {', '.join(packages)}: run scripts/setup "
          "(it installs the pinned versions into .venv)", file=sys.stderr)
    sys.exit(2)


def main(argv):
    parser = argparse.ArgumentParser(prog="breakglass_format", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("open")
    p.add_argument("vault")
    p.add_argument("name")
    p.add_argument("--share", action="append", required=True)
    p.add_argument("--recovery-share", action="append", default=[])
    p.add_argument("--module")
    p.add_argument("--out", required=True)
    p.add_argument("--unrecorded", action="store_true")
    p = sub.add_parser("seal")
    p.add_argument("vault")
    p.add_argument("name")
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--created", required=True)
    p.add_argument("--in", dest="infile", required=True)
    p.add_argument("--meta", action="append", default=[])
    p.add_argument("--config", required=True)
    p = sub.add_parser("derive")
    p.add_argument("vault")
    p.add_argument("--share", action="append", required=True)
    p.add_argument("--recovery-share", action="append", default=[])
    p = sub.add_parser("inspect")
    p.add_argument("file")
    p = sub.add_parser("kat")
    p.add_argument("file")
    p = sub.add_parser("manifest")
    p.add_argument("vault")
    p.add_argument("--pin")
    p.add_argument("--anchor")
    p = sub.add_parser("audit-verify")
    p.add_argument("vault")
    p.add_argument("--pin")
    p.add_argument("--anchor")
    p.add_argument("--token-head", action="store_true")
    p.add_argument("--share", action="append", default=[])
    p.add_argument("--module")
    p = sub.add_parser("audit-append")
    p.add_argument("vault")
    p.add_argument("--event", required=True)
    p.add_argument("--credential")
    p.add_argument("--detail", action="append", default=[])
    p.add_argument("--checkpoint", action="store_true")
    p.add_argument("--share", action="append", default=[])
    p.add_argument("--module")
    p.add_argument("--config", required=True)
    p.add_argument("--forge", choices=FORGERIES)
    args = parser.parse_args(argv)
    if MISSING:
        fail_missing(MISSING)
    command = {"open": cmd_open, "seal": cmd_seal, "derive": cmd_derive, "inspect": cmd_inspect,
               "kat": cmd_kat, "manifest": cmd_manifest, "audit-verify": cmd_audit_verify,
               "audit-append": cmd_audit_append}[args.command]
    try:
        result = command(args)
    except Failure as e:
        print(f"breakglass_format: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
