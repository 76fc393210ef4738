"""The evidence bundle of one letter: an ASiC-E-style zip that proves, offline and without the
gateway's database, who sent what, when the gateway accepted it, and who acknowledged it
(pure: bytes and keys in, the zip or the facts proven out).

Members, in order::

    mimetype                     application/vnd.gateway.evidence+zip (first, stored)
    package.xml                  the letter exactly as its sender signed it
    ledger/receipt.json          every ledger entry of the letter with its inclusion proof, the
                                 checkpoint with its witnesses' cosignatures, the signed
                                 acknowledgements (gateway-ledger-receipt/v1)
    acknowledgements/<id>.jws    each recipient's signed acknowledgement of reception
    statuses/<seq>.xml           each status packet about the letter, as its sender signed it
    trust/ca.pem, trust/crl-N.pem  the CA certificates and CRLs in force when it was made
    META-INF/manifest.json       every other member's SHA-256, the document key, the time
    META-INF/manifest.sig        a signed note by the gateway's ledger key over the manifest

Any changed byte fails the check and names the member.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.errors import GatewayError, PackageRejected
from gateway.evidence.ack import Statement, verify_ack
from gateway.ledger.checkpoint import NoteSigner, NoteVerifier, parse_note
from gateway.ledger.cosignature import WitnessKey
from gateway.ledger.entry import Entry, EventType, format_time
from gateway.ledger.receipt import verify_receipt
from gateway.trust.store import TrustStore
from gateway.trust.verify import verify_signature

MIMETYPE = b"application/vnd.gateway.evidence+zip"
FORMAT = "gateway-evidence-bundle/v1"
MANIFEST = "META-INF/manifest.json"
SIGNATURE = "META-INF/manifest.sig"
PACKAGE = "package.xml"
RECEIPT = "ledger/receipt.json"
MAX_MEMBERS = 10_000
MAX_BYTES = 1 << 31  # what the members may inflate to, in all


Say = Callable[[str], None]


class BundleInvalid(Exception):
    """The bundle does not prove what it claims; ``member`` names the file at fault."""

    def __init__(self, member: str, message: str) -> None:
        super().__init__(f"{member}: {message}")
        self.member = member
        self.message = message


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Materials:
    """What the gateway gathers for a bundle."""

    document_key: str
    package: bytes  # exactly as signed
    receipt: dict[str, Any]  # the receipt JSON of every entry of the letter
    acknowledgements: dict[str, str]  # delivery id -> compact JWS
    statuses: dict[int, bytes]  # ledger seq of the status entry -> the packet as signed
    ca_pem: bytes
    crls_pem: tuple[bytes, ...]


def build_bundle(materials: Materials, signer: NoteSigner, now: dt.datetime) -> bytes:
    """The zip: members, then the manifest of their hashes and the gateway's signed note."""
    members: dict[str, bytes] = {
        PACKAGE: materials.package,
        RECEIPT: (json.dumps(materials.receipt, ensure_ascii=False, indent=2) + "\n").encode(),
    }
    for delivery_id, jws in sorted(materials.acknowledgements.items()):
        members[f"acknowledgements/{delivery_id}.jws"] = jws.encode("ascii")
    for seq, packet in sorted(materials.statuses.items()):
        members[f"statuses/{seq}.xml"] = packet
    members["trust/ca.pem"] = materials.ca_pem
    for i, crl in enumerate(materials.crls_pem):
        members[f"trust/crl-{i}.pem"] = crl
    manifest = {
        "format": FORMAT,
        "document": materials.document_key,
        "created": format_time(now),
        "files": {name: _sha256(data) for name, data in members.items()},
    }
    manifest_bytes = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode()
    note = signer.sign(f"{FORMAT}\n{_sha256(manifest_bytes)}\n")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE, compress_type=zipfile.ZIP_STORED)
        for name, data in members.items():
            z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr(MANIFEST, manifest_bytes, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr(SIGNATURE, note, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _read(data: bytes) -> dict[str, bytes]:
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = z.infolist()
        if len(infos) > MAX_MEMBERS or sum(i.file_size for i in infos) > MAX_BYTES:
            raise BundleInvalid("(zip)", f"more than {MAX_MEMBERS} members or 2 GiB")
        if not infos or infos[0].filename != "mimetype":
            raise BundleInvalid("mimetype", "the first member is not mimetype")
        if infos[0].compress_type != zipfile.ZIP_STORED:
            raise BundleInvalid("mimetype", "mimetype is compressed; it must be stored")
        members: dict[str, bytes] = {}
        for info in infos:
            if info.filename in members:
                raise BundleInvalid(info.filename, "the member appears twice")
            try:
                members[info.filename] = z.read(info)
            except (zipfile.BadZipFile, zlib.error) as e:
                raise BundleInvalid(info.filename, f"the member's bytes are damaged: {e}") from e
        return members
    except zipfile.BadZipFile as e:
        raise BundleInvalid("(zip)", f"not a zip file: {e}") from e


@dataclass(frozen=True)
class Proven:
    """The facts a bundle proves, one line each, in the order they were checked."""

    document_key: str
    facts: tuple[str, ...]


def verify_bundle(
    data: bytes,
    key: NoteVerifier | Ed25519PublicKey,
    witnesses: Sequence[WitnessKey] = (),
    min_witnesses: int = 0,
) -> Proven:
    """Check a bundle with nothing but its bytes, the gateway's public key and the witnesses'
    keys; BundleInvalid naming the member at fault."""
    members = _read(data)
    facts: list[str] = []
    say: Callable[[str], None] = facts.append
    if members["mimetype"] != MIMETYPE:
        raise BundleInvalid("mimetype", f"is not {MIMETYPE.decode()}")
    manifest = _check_manifest(members, key)
    document = manifest["document"]
    say(
        f"integrity: all {len(manifest['files'])} members match the manifest the gateway "
        f"signed at {manifest['created']}"
    )
    receipt = _json_member(members, RECEIPT)
    try:
        verified = verify_receipt(receipt, key, tuple(witnesses), min_witnesses)
    except GatewayError as e:
        raise BundleInvalid(RECEIPT, e.message) from e
    head = verified.checkpoint
    entries = verified.entries
    if any(e.event.document != document for e in entries):
        raise BundleInvalid(RECEIPT, f"an entry is not of the document {document}")
    say(
        f"ledger: {len(entries)} entries of {document} are in the log {head.origin} "
        f"(checkpoint of size {head.size}, root {base64.b64encode(head.root).decode()})"
    )
    for cosig in verified.cosignatures:
        when = dt.datetime.fromtimestamp(cosig.timestamp, dt.UTC)
        say(f"witness: {cosig.witness} cosigned that checkpoint at {when:%Y-%m-%dT%H:%M:%SZ}")
    trust = _trust(members)
    _check_package(members, entries, trust, say)
    _check_acks(members, verified.acknowledgements, trust, say)
    for entry in entries:
        _entry_fact(entry, say)
    _check_statuses(members, entries, trust, say)
    return Proven(document, tuple(facts))


def _check_manifest(
    members: dict[str, bytes], key: NoteVerifier | Ed25519PublicKey
) -> dict[str, Any]:
    if MANIFEST not in members or SIGNATURE not in members:
        raise BundleInvalid(MANIFEST, "the manifest or its signature is missing")
    note = members[SIGNATURE].decode("utf-8", "replace")
    try:
        parsed = parse_note(note)
        claimed = parsed.text
        lines = claimed.split("\n")
        # a bare public key is named as the note's signer names itself (the ledger's origin)
        name = parsed.signatures[0].name
        verifier = key if isinstance(key, NoteVerifier) else NoteVerifier(name, key)
        text = verifier.verify(note)
    except GatewayError as e:
        raise BundleInvalid(SIGNATURE, e.message) from e
    if lines[0] != FORMAT or text != claimed:
        raise BundleInvalid(SIGNATURE, f"not a {FORMAT} manifest signature")
    if lines[1] != _sha256(members[MANIFEST]):
        raise BundleInvalid(MANIFEST, "its SHA-256 is not the one the gateway signed")
    manifest = _json_member(members, MANIFEST)
    files = manifest.get("files")
    if manifest.get("format") != FORMAT or not isinstance(files, dict):
        raise BundleInvalid(MANIFEST, f"not a {FORMAT} manifest")
    for name, data in members.items():
        if name in ("mimetype", MANIFEST, SIGNATURE):
            continue
        if name not in files:
            raise BundleInvalid(name, "the member is not in the manifest")
        if files[name] != _sha256(data):
            raise BundleInvalid(name, "its SHA-256 differs from the manifest's: it was changed")
    for name in files:
        if name not in members:
            raise BundleInvalid(name, "the manifest lists the member but it is missing")
    return manifest


def _json_member(members: dict[str, bytes], name: str) -> dict[str, Any]:
    try:
        value = json.loads(members[name])
    except KeyError as e:
        raise BundleInvalid(name, "the member is missing") from e
    except ValueError as e:
        raise BundleInvalid(name, f"not JSON: {e}") from e
    if not isinstance(value, dict):
        raise BundleInvalid(name, "not a JSON object")
    return value


def _trust(members: dict[str, bytes]) -> TrustStore:
    crls = [data for name, data in sorted(members.items()) if name.startswith("trust/crl-")]
    try:
        return TrustStore.from_pem(members["trust/ca.pem"], crls)
    except KeyError as e:
        raise BundleInvalid("trust/ca.pem", "the member is missing") from e
    except GatewayError as e:
        raise BundleInvalid("trust/ca.pem", e.message) from e


def _signed_by(name: str, data: bytes, trust: TrustStore, at: dt.datetime) -> str:
    try:
        content = verify_signature(data, trust, now=at)
    except PackageRejected as e:
        raise BundleInvalid(name, f"{e.code}: {e.message}") from e
    assert content.certificate is not None
    subject = content.certificate.subject.rfc4514_string()
    return f"{subject} ({', '.join(content.organ_ids) or 'no OrganId'})"


def _check_package(
    members: dict[str, bytes],
    entries: Sequence[Entry],
    trust: TrustStore,
    say: Callable[[str], None],
) -> None:
    submitted = [e for e in entries if e.event.type is EventType.SUBMITTED]
    if not submitted:
        raise BundleInvalid(RECEIPT, "no submitted entry")
    entry = submitted[0]
    package = members.get(PACKAGE)
    if package is None:
        raise BundleInvalid(PACKAGE, "the member is missing")
    if _sha256(package) != entry.event.package_sha256:
        raise BundleInvalid(PACKAGE, "its SHA-256 is not the one the ledger recorded")
    signer = _signed_by(PACKAGE, package, trust, entry.time)
    say(
        f"sent: {entry.event.sender} sent {PACKAGE} (SHA-256 {entry.event.package_sha256}), "
        f"signed by {signer}, a certificate valid under the bundled CAs and CRLs at "
        f"{format_time(entry.time)}"
    )
    say(f"accepted: the gateway accepted it at {format_time(entry.time)} (ledger seq {entry.seq})")


def _check_acks(
    members: dict[str, bytes],
    statements: Sequence[Statement],
    trust: TrustStore,
    say: Callable[[str], None],
) -> None:
    in_receipt = {(s.delivery_id, s.recipient) for s in statements}
    files = [n for n in members if n.startswith("acknowledgements/")]
    if len(files) != len(in_receipt):
        raise BundleInvalid(RECEIPT, "its acknowledgements are not those of the bundle")
    for name in sorted(files):
        try:
            verified = verify_ack(members[name].decode("ascii"), trust)
        except (GatewayError, UnicodeDecodeError) as e:
            raise BundleInvalid(name, getattr(e, "message", str(e))) from e
        said = verified.statement
        if (said.delivery_id, said.recipient) not in in_receipt:
            raise BundleInvalid(name, "no delivered entry of the receipt names it")
        if said.recipient not in verified.signer.organ_ids:
            raise BundleInvalid(name, f"its signer certificate does not name {said.recipient}")
        say(
            f"acknowledged: {said.recipient} signed that it received copy {said.delivery_id} "
            f"(SHA-256 {said.package_sha256}) at {said.time:%Y-%m-%dT%H:%M:%SZ}, with "
            f"{verified.signer.certificate.subject.rfc4514_string()}"
        )


def _entry_fact(entry: Entry, say: Callable[[str], None]) -> None:
    ev = entry.event
    when = format_time(entry.time)
    if ev.type is EventType.DELIVERED:
        how = {"signed": "a signed", "unsigned": "an unsigned"}.get(
            str(ev.details.get("ack")), "no"
        )
        say(f"delivered: to {ev.recipient} at {when}, with {how} acknowledgement")
    elif ev.type in (EventType.EXPIRED, EventType.DEAD_LETTERED, EventType.REDRIVEN):
        say(f"{ev.type.value}: the copy for {ev.recipient} at {when}")


def _check_statuses(
    members: dict[str, bytes],
    entries: Sequence[Entry],
    trust: TrustStore,
    say: Callable[[str], None],
) -> None:
    by_seq = {e.seq: e for e in entries if e.event.type is EventType.STATUS}
    for name in sorted(n for n in members if n.startswith("statuses/")):
        seq_text = name.removeprefix("statuses/").removesuffix(".xml")
        entry = by_seq.get(int(seq_text)) if seq_text.isdigit() else None
        if entry is None:
            raise BundleInvalid(name, "no status entry of the receipt has this sequence number")
        if _sha256(members[name]) != entry.event.package_sha256:
            raise BundleInvalid(name, "its SHA-256 is not the one the ledger recorded")
        signer = _signed_by(name, members[name], trust, entry.time)
        say(
            f"status: {entry.event.sender} sent status {entry.event.code} about the letter at "
            f"{format_time(entry.time)}, signed by {signer}"
        )
