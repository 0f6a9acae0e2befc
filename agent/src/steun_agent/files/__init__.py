"""File transfer: browse below a root; download and upload in credit-paced, resumable, SHA-256 checked chunks;
make directories, remove and rename entries.

Public API for the session runtime (see ``service.py`` for the full contract)::

    files = files_service_for(account, send, root, hash_cache=agent_hash_cache, on_event=audit)
    files.feed(payload)            # each console DATA record on Channel.FILES, once `files` is granted
    await files.close_all()        # Stop / session end: every transfer ends now

``files_service_for`` gives a :class:`FilesService` in this process when ``account`` is the agent's own
(or None), and a :class:`FilesProxy` to a worker process acting as ``account`` otherwise (a service agent
running as root: ``proxy.py``, ``worker.py``). Paths are checked by :class:`PathGuard` (``pathguard.py``);
disk work is in ``storage.py``. See docs/design/0092-file-transfer.md.
"""

from __future__ import annotations

from .pathguard import FilesError, Located, PathGuard, split
from .proxy import FilesProxy, ProxyStatistics, files_service_for
from .service import EVENT_NAMES, FilesEvent, FilesService, FilesStatistics, HashCache, TransferStatus
from .storage import PartialUpload, prepare_upload

__all__ = [
    "EVENT_NAMES",
    "FilesError",
    "FilesEvent",
    "FilesProxy",
    "FilesService",
    "FilesStatistics",
    "HashCache",
    "Located",
    "PartialUpload",
    "PathGuard",
    "ProxyStatistics",
    "TransferStatus",
    "files_service_for",
    "prepare_upload",
    "split",
]
