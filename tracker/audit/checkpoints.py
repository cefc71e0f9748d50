"""Signed checkpoints of the audit chain's head, kept outside the database.

A hash chain shows that no event in it was changed, but not that its tail was cut off or that
the whole chain was recomputed by someone who can write the table. A checkpoint is the
sequence number and hash of the head at a moment, signed with an Ed25519 key the database
never sees and written to a directory the database cannot reach. ``tracker audit verify``
holds the chain against every checkpoint: an event missing after one, or a head that no
longer matches, names the checkpoint that shows it.

Ed25519 comes from ``cryptography`` (the Python Cryptographic Authority's library over
OpenSSL): maintained, with wheels for every platform the tracker runs on, and already the
library security teams audit for Python.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tracker import clock

FORMAT = "tracker-audit-checkpoint/1"
SIGNED_FIELDS = ("format", "seq", "head", "written_at", "reason", "key_id")
# The newest checkpoint is also kept under this name, so "is one due?" reads one small file.
LATEST = "latest.json"
# The head a verification last found sound (see ``VerifiedMark``): not a checkpoint.
VERIFIED = "verified.json"
VERIFIED_FORMAT = "tracker-audit-verified/1"
VERIFIED_FIELDS = ("format", "seq", "head", "verified_at", "key_id")
SUPERSEDED = "superseded"
REASONS = ("activity", "export", "report", "command", "restore")

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """The key or the directory cannot be used; the message says what to fix."""


def generate_key_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_private_key(value: str) -> Ed25519PrivateKey:
    """The key from ``TRACKER_AUDIT_SIGNING_KEY``: PEM text, or the path of a PEM file."""
    text = value.strip()
    if not text.startswith("-----BEGIN"):
        path = Path(text).expanduser()
        try:
            text = path.read_text()
        except OSError as error:
            raise CheckpointError(
                f"TRACKER_AUDIT_SIGNING_KEY: cannot read {path} ({error.strerror}); give the "
                "path of an Ed25519 private key in PEM (make one with `tracker audit keygen`)."
            ) from None
    try:
        key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise CheckpointError(
            "TRACKER_AUDIT_SIGNING_KEY is not a PEM private key without a passphrase."
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError("TRACKER_AUDIT_SIGNING_KEY must be an Ed25519 key.")
    return key


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _signed_bytes(fields: dict[str, Any], names: tuple[str, ...] = SIGNED_FIELDS) -> bytes:
    content = {name: fields[name] for name in names}
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head: str
    written_at: str
    reason: str
    key_id: str
    signature: str
    name: str = ""

    def describe(self) -> str:
        return f"checkpoint {self.name} (event {self.seq}, {self.written_at})"


@dataclass(frozen=True)
class VerifiedMark:
    """The chain was verified, from the genesis, up to event ``seq`` with hash ``head``, and
    held against every checkpoint up to there. Signed with the checkpoint key and kept beside
    the checkpoints, out of the database's reach: a report verifies only what came after it,
    and nobody who can write only the database can move it forward."""

    seq: int
    head: str
    verified_at: str


@dataclass(frozen=True)
class CheckpointProblem:
    name: str
    problem: str


class CheckpointStore:
    """The checkpoint directory and the key that signs (and checks) what is in it."""

    def __init__(self, directory: Path, key: Ed25519PrivateKey, interval: timedelta) -> None:
        self._seen_at: datetime | None = None
        self.directory = directory
        self.key = key
        self.public = key.public_key()
        self.key_id = key_id(self.public)
        self.interval = interval

    @property
    def directory(self) -> Path:
        return self._directory

    @directory.setter
    def directory(self, directory: Path) -> None:
        self._directory = directory
        # When this process last saw a checkpoint written there: while that is recent, a
        # commit needs no file read to know none is due (other workers only make it sooner).
        self._seen_at = None

    # --- writing -----------------------------------------------------------------------

    def write(self, seq: int, head: str, reason: str) -> Checkpoint | None:
        """Sign and write a checkpoint of (seq, head); an empty trail has nothing to sign."""
        if seq <= 0:
            return None
        if reason not in REASONS:
            raise ValueError(f"unknown checkpoint reason {reason!r}")
        now = clock.now()
        fields: dict[str, Any] = {
            "format": FORMAT,
            "seq": seq,
            "head": head,
            "written_at": now.isoformat(timespec="microseconds"),
            "reason": reason,
            "key_id": self.key_id,
        }
        signature = self.key.sign(_signed_bytes(fields))
        fields["signature"] = base64.b64encode(signature).decode("ascii")
        name = f"{seq:012d}-{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
        self.directory.mkdir(parents=True, exist_ok=True)
        body = json.dumps(fields, sort_keys=True, indent=1) + "\n"
        self._write_new(self.directory / name, body)
        self._replace(self.directory / LATEST, body)
        self._seen_at = now
        return _checkpoint(fields, name)

    def mark_verified(self, seq: int, head: str, *, whole_chain: bool = False) -> None:
        """Sign and keep the head a verification found sound, in place of the one before.
        An incremental verification never moves the mark back (one that finished later may
        have seen less); a verification of the whole chain sets it (after a restore the
        chain may be shorter than the old mark)."""
        current = self.verified()
        if seq <= 0 or (not whole_chain and current is not None and current.seq >= seq):
            return
        fields: dict[str, Any] = {
            "format": VERIFIED_FORMAT,
            "seq": seq,
            "head": head,
            "verified_at": clock.now().isoformat(timespec="microseconds"),
            "key_id": self.key_id,
        }
        signature = self.key.sign(_signed_bytes(fields, VERIFIED_FIELDS))
        fields["signature"] = base64.b64encode(signature).decode("ascii")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._replace(self.directory / VERIFIED, json.dumps(fields, sort_keys=True) + "\n")

    def verified(self) -> VerifiedMark | None:
        """The head last verified, if its mark is there and its signature holds."""
        try:
            fields = json.loads((self.directory / VERIFIED).read_text())
            if fields.get("format") != VERIFIED_FORMAT:
                return None
            signature = base64.b64decode(fields["signature"], validate=True)
            self.public.verify(signature, _signed_bytes(fields, VERIFIED_FIELDS))
            seq, head = fields["seq"], fields["head"]
            if not isinstance(seq, int) or not isinstance(head, str):
                return None
            return VerifiedMark(seq, head, str(fields["verified_at"]))
        except (OSError, ValueError, KeyError, TypeError, InvalidSignature):
            return None

    def forget_verified(self) -> None:
        (self.directory / VERIFIED).unlink(missing_ok=True)

    def due(self) -> bool:
        if self._seen_at is not None and not self._stale(self._seen_at):
            return False
        try:
            written = datetime.fromisoformat(
                json.loads((self.directory / LATEST).read_text())["written_at"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            return True
        self._seen_at = written
        return self._stale(written)

    def _stale(self, written: datetime) -> bool:
        age = clock.now() - written
        # A clock set back (a restored machine) makes the age negative: write one then too.
        return age >= self.interval or age < timedelta(0)

    def after_commit(self, seq: int, head: str, reason: str | None) -> None:
        """Called with the head a transaction committed: write when asked to or when due.
        The data is committed already, so a checkpoint that cannot be written is logged,
        never raised into the request."""
        try:
            if reason is not None:
                self.write(seq, head, reason)
            elif self.due():
                self.write(seq, head, "activity")
        except OSError:
            log.exception("the audit checkpoint could not be written to %s", self.directory)

    @staticmethod
    def _write_new(path: Path, body: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "w") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())

    @staticmethod
    def _replace(path: Path, body: str) -> None:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(body)
        os.replace(temporary, path)

    # --- reading -----------------------------------------------------------------------

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(
            path
            for path in self.directory.glob("*.json")
            if path.name not in (LATEST, VERIFIED) and not path.name.startswith(".")
        )

    def load(self, after_seq: int = 0) -> tuple[list[Checkpoint], list[CheckpointProblem]]:
        """Every checkpoint whose signature holds, in sequence order, and the problems of
        those that do not (a forged or edited checkpoint is itself a finding). With
        ``after_seq``, only those past that event by their file name (a name that does not
        say is read all the same)."""
        good: list[Checkpoint] = []
        bad: list[CheckpointProblem] = []
        for path in self.files():
            named_seq = path.name[:12]
            if after_seq and named_seq.isdigit() and int(named_seq) <= after_seq:
                continue
            try:
                fields = json.loads(path.read_text())
                checkpoint = _checkpoint(fields, path.name)
                signature = base64.b64decode(checkpoint.signature, validate=True)
                self.public.verify(signature, _signed_bytes(fields))
            except (OSError, ValueError, KeyError, TypeError):
                bad.append(CheckpointProblem(path.name, "cannot be read as a checkpoint"))
            except InvalidSignature:
                bad.append(
                    CheckpointProblem(path.name, "its signature does not hold (edited or forged)")
                )
            else:
                good.append(checkpoint)
        good.sort(key=lambda c: (c.seq, c.written_at))
        return good, bad

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint written (its copy under LATEST), if its signature holds."""
        try:
            fields = json.loads((self.directory / LATEST).read_text())
            checkpoint = _checkpoint(fields, LATEST)
            self.public.verify(
                base64.b64decode(checkpoint.signature, validate=True), _signed_bytes(fields)
            )
        except (OSError, ValueError, KeyError, TypeError, InvalidSignature):
            return None
        return checkpoint

    def newest(self) -> Checkpoint | None:
        good, _bad = self.load()
        return good[-1] if good else None

    def supersede_after(self, seq: int) -> list[str]:
        """Move the checkpoints past ``seq`` aside (a restore that accepted the loss of those
        events). They are kept, never deleted: they show what was given up."""
        moved = []
        target = self.directory / SUPERSEDED
        for checkpoint in self.load()[0]:
            if checkpoint.seq > seq:
                target.mkdir(parents=True, exist_ok=True)
                os.replace(self.directory / checkpoint.name, target / checkpoint.name)
                moved.append(checkpoint.name)
        (self.directory / LATEST).unlink(missing_ok=True)
        mark = self.verified()
        if mark is not None and mark.seq > seq:
            self.forget_verified()
        self._seen_at = None
        return moved


def _checkpoint(fields: dict[str, Any], name: str) -> Checkpoint:
    if fields.get("format") != FORMAT:
        raise ValueError("not a checkpoint")
    seq, head = fields["seq"], fields["head"]
    if not isinstance(seq, int) or not isinstance(head, str):
        raise ValueError("malformed checkpoint")
    datetime.fromisoformat(fields["written_at"])
    return Checkpoint(
        seq=seq,
        head=head,
        written_at=str(fields["written_at"]),
        reason=str(fields["reason"]),
        key_id=str(fields["key_id"]),
        signature=str(fields["signature"]),
        name=name,
    )


def check_against(
    checkpoints: Iterable[Checkpoint], hashes: dict[int, str], events: int
) -> tuple[int, str] | None:
    """The first checkpoint the chain contradicts, as (first bad event, problem), or None.

    ``hashes`` holds the chain's hash at each checkpointed sequence number that it reaches;
    ``events`` is how many events the chain holds.
    """
    for checkpoint in checkpoints:
        if checkpoint.seq > events:
            first_missing = events + 1
            return (
                first_missing,
                f"{checkpoint.describe()}: events {first_missing} to {checkpoint.seq} are "
                f"missing (the trail ends at event {events})",
            )
        if hashes.get(checkpoint.seq) != checkpoint.head:
            return (
                checkpoint.seq,
                f"{checkpoint.describe()}: the head no longer matches (the chain up to event "
                f"{checkpoint.seq} was rewritten)",
            )
    return None
