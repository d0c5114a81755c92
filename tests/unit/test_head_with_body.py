"""A response's head and body in one socket write (server_options.HeadWithBody), on a real event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from aimm_gateway.security.server_options import HeadWithBody


class Recording:
    """Stands in for uvloop's transport: records each write call as the socket would see it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.vectored = 0  # writes given as several buffers (writev: nothing joined)
        self.closed = False
        self.extra = {"peername": ("127.0.0.1", 1234)}

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, parts: Any) -> None:
        self.vectored += 1
        self.writes.append(b"".join(parts))  # one writev

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return self.extra.get(name)


async def test_head_and_body_sent_at_once_are_one_write_and_later_writes_pass_through() -> None:
    real = Recording()
    transport = HeadWithBody(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert real.writes == []  # held for the body
    transport.write(b"{}")
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    transport.write(b"more")
    assert real.writes[-1] == b"more" and len(real.writes) == 2
    await asyncio.sleep(0)  # the release scheduled for the head finds nothing held
    assert len(real.writes) == 2
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1234)  # anything else: the real transport's


async def test_a_head_alone_goes_out_in_the_next_turn_and_a_big_body_is_not_copied() -> None:
    real = Recording()
    transport = HeadWithBody(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")  # a stream's head
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]  # not kept for the first event
    socket = Recording()
    big = HeadWithBody(socket, asyncio.get_running_loop())  # type: ignore[arg-type]
    big.write(b"head")
    big.write(b"x" * 70_000)
    assert socket.writes == [b"head" + b"x" * 70_000] and socket.vectored == 1


async def test_close_sends_a_held_head_first_and_a_closed_socket_gets_nothing() -> None:
    real = Recording()
    transport = HeadWithBody(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
    transport.close()
    assert real.writes == [b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n"] and real.closed
    gone = Recording()
    late = HeadWithBody(gone, asyncio.get_running_loop())  # type: ignore[arg-type]
    late.write(b"head")
    gone.closed = True  # the client left before the next turn
    await asyncio.sleep(0)
    assert gone.writes == [] and late.is_closing()
