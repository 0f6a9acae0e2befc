"""Size and depth limits. They are part of the protocol: a peer may rely on them."""

from __future__ import annotations

#: No JSON message of any type may be larger than this (bytes, UTF-8).
MAX_TEXT_MESSAGE = 4 * 1024 * 1024
#: Default cap for a message type that does not name its own.
DEFAULT_MESSAGE_SIZE = 16 * 1024
#: Deepest nesting of JSON arrays/objects accepted in any message.
MAX_JSON_DEPTH = 16
#: Largest binary frame payload (bytes); individual frame types may be stricter.
MAX_FRAME_PAYLOAD = 1024 * 1024
#: Request ids are JSON-safe integers (also for JavaScript peers).
MAX_REQUEST_ID = 2**53 - 1
#: Requests in flight per connection that wait for a reply.
MAX_PENDING_REQUESTS = 256
#: Outgoing messages a connection buffers before its owner drains them.
MAX_OUTGOING = 1024

# Field-level bounds shared by the schemas.
SHORT_TEXT = 256
LONG_TEXT = 4096
MAX_LIST = 1024
MAX_PACKAGES = 20_000
