"""File transfer: browse below a root; download and upload in credit-paced, resumable, SHA-256 checked chunks.

Public API for the session runtime (see ``service.py`` for the full contract)::

    files = FilesService(send, root=Account.current().home, hash_cache=agent_hash_cache, on_event=audit)
    files.feed(payload)            # each console DATA record on Channel.FILES, once `files` is granted
    await files.close_all()        # Stop / session end: every transfer ends now

Paths are checked by :class:`PathGuard` (``pathguard.py``); disk work is in ``storage.py``.
See docs/design/0092-file-transfer.md.
"""

from __future__ import annotations

from .pathguard import FilesError, Located, PathGuard, split
from .service import FilesEvent, FilesService, FilesStatistics, HashCache, TransferStatus
from .storage import PartialUpload, prepare_upload

__all__ = [
    "FilesError",
    "FilesEvent",
    "FilesService",
    "FilesStatistics",
    "HashCache",
    "Located",
    "PartialUpload",
    "PathGuard",
    "TransferStatus",
    "prepare_upload",
    "split",
]
