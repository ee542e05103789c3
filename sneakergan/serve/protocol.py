"""uvicorn's h11 protocol with a deadline for reading each request.

uvicorn times out idle keep-alive connections only after a response; a client that connects and sends nothing,
or half a request, holds its socket forever (20k of them exhaust the file descriptors). Here every request must
arrive whole within `header_timeout` seconds for its head and then never stall for more than `body_idle_timeout`
seconds between body chunks; otherwise the connection is closed (with a 408 when nothing was answered yet).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


_TIMEOUT_BODY = b"the request did not arrive in time\n"
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
                     b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY)


class TimedH11Protocol(H11Protocol):
    """H11Protocol that closes connections whose request does not arrive in time."""

    header_timeout: float = 10.0
    body_idle_timeout: float = 15.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._read_timer: asyncio.TimerHandle | None = None
        self._arm(self.header_timeout)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        timer = getattr(self, "_read_timer", None)
        if timer is not None:
            timer.cancel()
            self._read_timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm(self.body_idle_timeout)  # the head is in; now each body chunk must follow promptly
        elif state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR, h11.MIGHT_SWITCH_PROTOCOL,
                       h11.SWITCHED_PROTOCOL):
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request on this connection is covered by uvicorn's keep-alive timeout until its first byte;
        # from there, the head must arrive within header_timeout again.
        self._arm(self.header_timeout + float(self.timeout_keep_alive))

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            # Nothing answered yet: say why, then close (a half-read request cannot be answered otherwise).
            try:
                self.transport.write(_TIMEOUT_RESPONSE)
            except Exception:  # noqa: BLE001 - the peer may be gone already
                pass
        if self.cycle is not None:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()
