"""The worker's round: claim a job in a short transaction, make its file outside any write
transaction (reading in a read-only session of its own), write it under a temporary name and
rename it when it is whole, then record done or failed in another short transaction. While the
file is made, a thread renews the lease, so another worker takes the job over only from a
worker that stopped."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from tracker.auth.models import User
from tracker.db import Database
from tracker.jobs import services
from tracker.jobs.kinds import kind_of, may_make
from tracker.jobs.services import Claimed

log = logging.getLogger(__name__)
PARTIAL_SUFFIX = ".part"
# A partial file this old belongs to no running job (a lease is renewed every few seconds).
STALE_PARTIAL = timedelta(days=1)
CHUNK = 1024 * 1024


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:120]


@dataclass(frozen=True)
class Outcome:
    job_id: int
    state: str  # done, failed, or lost (taken over by another worker meanwhile)
    detail: str = ""


class _LeaseKeeper:
    """Renews the lease of the job being made every ``interval`` in a transaction of its own,
    until stopped; notes when the job was taken over."""

    def __init__(self, database: Database, claimed: Claimed, interval: float) -> None:
        self.database = database
        self.claimed = claimed
        self.interval = interval
        self.stopped = threading.Event()
        self.lost = False
        self.thread = threading.Thread(target=self._run, name="lease", daemon=True)

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                with self.database.session_scope() as db:
                    held = services.renew_lease(db, self.claimed.job_id, self.claimed.worker)
            except Exception:  # the database may be away for a moment: try again later
                log.exception("could not renew the lease of export job %s", self.claimed.job_id)
                continue
            if not held:
                self.lost = True
                return

    def __enter__(self) -> _LeaseKeeper:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        self.thread.join()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_next(
    database: Database,
    exports_dir: Path,
    keep: timedelta,
    worker: str | None = None,
    renew_every: timedelta = services.LEASE / 4,
) -> Outcome | None:
    """Make the oldest waiting job's file; None when no job waits."""
    worker = worker or default_worker_name()
    with database.session_scope() as db:
        claimed = services.claim_next(db, worker)
    if claimed is None:
        return None
    exports_dir.mkdir(parents=True, exist_ok=True)
    kind = kind_of(claimed.kind)
    token = secrets.token_hex(8)
    partial = exports_dir / f"job-{claimed.job_id}-{token}{PARTIAL_SUFFIX}"
    final = exports_dir / f"job-{claimed.job_id}-{token}.{kind.extension}"
    try:
        with _LeaseKeeper(database, claimed, renew_every.total_seconds()) as keeper:
            reading = database.read_session()
            try:
                # The requester as they are now: their role, site and blinding decide the file.
                user = reading.get(User, claimed.requested_by_id)
                refusal = may_make(user, kind)
                if refusal is not None:
                    raise PermissionError(f"Not made: {refusal}.")
                assert user is not None
                with partial.open("wb") as handle:
                    record_export = kind.write(reading, user, claimed.parameters, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
            finally:
                reading.rollback()
                reading.close()
        if keeper.lost:
            partial.unlink(missing_ok=True)
            return Outcome(claimed.job_id, "lost", "taken over by another worker")
        size, digest = partial.stat().st_size, _sha256(partial)
        os.replace(partial, final)
    except Exception as error:
        partial.unlink(missing_ok=True)
        log.exception("export job %s failed", claimed.job_id)
        with database.session_scope() as db:
            recorded = services.fail(db, claimed.job_id, worker, _describe(error))
        return Outcome(claimed.job_id, "failed" if recorded else "lost", _describe(error))
    try:
        with database.session_scope() as db:
            recorded = services.complete(
                db,
                claimed.job_id,
                worker,
                file_name=final.name,
                file_size=size,
                file_sha256=digest,
                keep=keep,
                record_export=record_export,
            )
    except BaseException:
        final.unlink(missing_ok=True)  # no file without its row saying so
        raise
    if not recorded:
        final.unlink(missing_ok=True)
        return Outcome(claimed.job_id, "lost", "taken over by another worker")
    return Outcome(claimed.job_id, "done", f"{size} bytes, sha256 {digest}")


def expire(database: Database, exports_dir: Path) -> int:
    """Delete the files past their expiry, and partial files no running job writes."""
    with database.session_scope() as db:
        expired = services.expire_files(db, exports_dir)
    if exports_dir.is_dir():
        import time

        cutoff = time.time() - STALE_PARTIAL.total_seconds()
        for path in exports_dir.glob(f"*{PARTIAL_SUFFIX}"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                continue
    return expired


def exports_folder() -> Path:
    """Where this app's job files are (TRACKER_EXPORTS_DIR, default instance/exports)."""
    from flask import current_app

    return Path(current_app.config["TRACKER_EXPORTS_DIR"])


def kept_for() -> timedelta:
    """How long a made file is kept (TRACKER_EXPORT_KEEP_HOURS)."""
    from flask import current_app

    return timedelta(hours=int(current_app.config["TRACKER_EXPORT_KEEP_HOURS"]))
