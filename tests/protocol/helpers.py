"""Two protocol connections joined by an in-memory link (h11's ConnectionPair)."""

from __future__ import annotations

from steun_protocol import Connection, Side
from steun_protocol.connection import Event
from steun_protocol.control import AGENT_API, Hello, HelloResult
from steun_protocol.messages import Api


class ConnectionPair:
    def __init__(self, api: Api = AGENT_API) -> None:
        self.client = Connection(api, Side.CLIENT)
        self.server = Connection(api, Side.SERVER)

    def peer(self, conn: Connection) -> Connection:
        return self.server if conn is self.client else self.client

    def flush(self, sender: Connection) -> list[Event]:
        """Deliver everything ``sender`` queued to its peer; return the peer's events."""
        receiver = self.peer(sender)
        for data in sender.data_to_send():
            if isinstance(data, str):
                receiver.receive_text(data)
            else:
                receiver.receive_bytes(data)
        return receiver.events_received()

    def hello(self, versions: list[int] | None = None) -> None:
        self.client.send_request(Hello(versions=versions or [1], software="test/1"))
        (event,) = self.flush(self.client)
        self.server.send_result(event.request.id, HelloResult(version=1, nonce="A" * 43, server_time=0.0))  # type: ignore[attr-defined]
        self.flush(self.server)
        assert self.client.ready and self.server.ready
