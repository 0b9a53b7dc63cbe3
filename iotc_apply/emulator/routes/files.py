"""Routes of the file service: upload, list, delete."""

from __future__ import annotations

from flask import Blueprint, Response, request

from .. import views
from ..errors import PreconditionFailed
from .common import emu, no_content, ok, route, state


def register(bp: Blueprint) -> None:
    @route(bp, "/File", ["POST"])
    def file_upload() -> Response:
        upload = request.files.get("fileData")
        if upload is None:
            raise PreconditionFailed("fileData is required.", param="fileData")
        record = state().files.upload_file(request.form.get("ModuleType", ""),
                                           request.form.get("fileRefGuid", ""),
                                           upload.filename or "", upload.read(),
                                           request.form.get("Tag"))
        return ok([views.file_item(record, emu().file_url)], message="File uploaded.")

    @route(bp, "/File/<module>/<ref_guid>", ["GET"])
    def file_list(module: str, ref_guid: str) -> Response:
        rows = [views.file_item(f, emu().file_url)
                for f in state().files.files(module, ref_guid)]
        # none: 200 with an empty list, as the live service answered OLD tests/storage.py:52
        # (its get_files takes only 200 or 409, under `set -e`); the AE swagger's 204 is
        # not what it did (fidelity audit C6)
        return ok({"fileData": rows}, count=len(rows))

    @route(bp, "/File/<module>/<guid>", ["DELETE"])
    def file_delete(module: str, guid: str) -> Response:
        if not state().files.delete_file(module, guid):
            return no_content()
        return ok([], message="File deleted successfully.")
