"""The file service's rules: uploads, listings, deletes and the content behind signed URLs.

Plain Python, no Flask. A file attached to another service's object (a firmware upgrade) may
change only while that object allows it: the owning service registers a `FileOwner` check
for its module, and this module asks it, never reading the owner's table itself.
Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

from collections.abc import Callable

from .core import Context
from .errors import Conflict, PreconditionFailed
from .store import Record

FILE_MODULES = ("deviceimage", "companylogo", "firmware", "userprofile", "importbatch",
                "solutionimage", "devicecertificate", "custom", "module", "widgetimage",
                "deviceupdate", "ggcomponentartifact", "ggcomponentrecipe")

# An owner's check: raise the service's refusal when files of `ref` may not change;
# `must_exist` says whether `ref` must be one of the owner's objects (no longer, anywhere:
# any reference GUID may hold files; see `upload_file`).
FileOwner = Callable[[str, bool], None]


class Files:
    """Files per (module, reference GUID), with their bytes."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.owners: dict[str, FileOwner] = {}

    def register_owner(self, module: str, check: FileOwner) -> None:
        self.owners[module] = check

    def upload_file(self, module: str, ref_guid: str, name: str, data: bytes,
                    tag: str | None) -> Record:
        """`POST /File` (multipart `fileData`, `fileRefGuid`, `ModuleType`, `Tag`).

        Source: PKG lib/storage.py:83 create (its client puts the MD5 in `Tag` when the
        caller gives none, l.123-124) and lib/upgrade.py:173 upload (sends no `Tag`), OLD
        tests/storage.py (custom storage observed disabled). The tag is kept as sent: no
        source shows the service computing one (fidelity audit C4). ASSUMPTION: a released
        upgrade's files cannot change (the owner's check).
        """
        module = module.lower()
        if module not in FILE_MODULES:
            raise PreconditionFailed(f"Invalid ModuleType '{module}'.", param="ModuleType")
        if module == "custom":
            raise Conflict("Custom file storage is not enabled.", param="CustomStorageDisabled")
        if not name:
            raise PreconditionFailed("fileData is required.", param="fileData")
        with self.store.transaction():
            ref = ref_guid.upper()
            if module in self.owners:
                # any reference GUID may hold files (OLD tests/storage.py uploads firmware
                # files to an arbitrary app GUID, live; the AWS file swagger's only 409 is
                # for the user or company: fidelity audit C5); an upgrade's own rules still
                # apply when the reference is one
                self.owners[module](ref, False)
            record = {"guid": self.ctx.new_guid(), "module": module, "refGuid": ref,
                      "name": name, "tag": tag or None,
                      "size": len(data), "createdDate": self.ctx.now()}
            self.store.insert("file", record, nkey=f"{module}:{ref}:{name}", parent=ref)
            self.store.put_blob(record["guid"], data)
            return record

    def files(self, module: str, ref_guid: str) -> list[Record]:
        """`GET /File/{module}/{ref}`: none answers 204.

        Source: AE file swagger `GET /File/{moduleType}/{fileRefGuid}` (204 no records);
        PKG lib/storage.py:60 get_files also accepts a 409 there (the client tolerates both).
        """
        if module.lower() not in FILE_MODULES:
            raise PreconditionFailed(f"Invalid ModuleType '{module}'.", param="ModuleType")
        return self.files_of(ref_guid, module)

    def files_of(self, ref_guid: str, module: str = "firmware") -> list[Record]:
        """The files another service's object holds (no refusal when there are none)."""
        with self.store.lock:
            return [f for f in self.store.children("file", ref_guid.upper())
                    if f["module"] == module.lower()]

    def drop_files_of(self, ref_guid: str) -> None:
        """Remove every file of an object that is being deleted (inside its transaction)."""
        for f in self.store.children("file", ref_guid.upper()):
            self.store.delete("file", f["guid"])

    def delete_file(self, module: str, guid: str) -> bool:
        """`DELETE /File/{module}/{guid}`: True when deleted, False (204) when there was none.

        Source: AE file swagger (204 when the file is not found), PKG lib/storage.py:140.
        """
        with self.store.transaction():
            record = self.store.get("file", guid)
            if record is None or record["module"] != module.lower():
                return False
            if record["module"] in self.owners:
                self.owners[record["module"]](record["refGuid"], False)
            self.store.delete("file", record["guid"])
            return True

    def file_content(self, guid: str) -> tuple[Record, bytes] | None:
        """The bytes behind a signed download URL. Source: OLD tests/storage.py (downloaded
        content matched the upload)."""
        record = self.store.get("file", guid)
        data = self.store.blob(guid.upper()) if record else None
        return (record, data) if record and data is not None else None
