"""A done job's file as a download, for the page and the API alike: its requester's alone,
on record as downloaded, streamed from the exports folder (no database transaction is held
while it is sent)."""

from __future__ import annotations

from flask import Response, send_file

from tracker.auth.signin import current_actor
from tracker.db import get_db, write_unit
from tracker.errors import Conflict, Gone
from tracker.jobs import queries, services
from tracker.jobs.kinds import kind_of
from tracker.jobs.models import ExportJob
from tracker.jobs.worker import exports_folder


def download_response(job: ExportJob) -> Response:
    """A done job's file for its requester, on record as downloaded; 410 once it expired."""
    if job.state != "done":
        raise Conflict(f"Export {job.id} is {job.state}: its file is not made yet.")
    if not queries.file_available(job):
        raise Gone(f"Export {job.id} expired and its file was deleted; ask for it again.")
    path = queries.file_path(exports_folder(), job)
    if not path.is_file():
        # Every server and worker must share TRACKER_EXPORTS_DIR (README, production).
        raise Gone(f"The file of export {job.id} is not in this server's exports folder.")
    kind = kind_of(job.kind)
    with write_unit(get_db()) as writes:
        services.record_download(writes, current_actor(), job.id)
    stamp = f"{job.finished_at:%Y%m%dT%H%M%SZ}" if job.finished_at else str(job.id)
    return send_file(
        path,
        mimetype=kind.mimetype,
        as_attachment=True,
        download_name=f"{kind.file_stem()}-{stamp}.{kind.extension}",
        conditional=False,
        etag=False,
    )
