"""``kiln serve --workers N`` hands its worker processes a listening socket that asyncio recognises as
TCP, so their connections get TCP_NODELAY (without it each keep-alive answer waited ~40 ms)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from kiln.api.server import tcp_socket


async def _nodelay_of_accepted(listener: socket.socket) -> int:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
    try:
        return await asyncio.wait_for(accepted, 5)
    finally:
        writer.close()
        server.close()


def test_worker_connections_get_tcp_nodelay() -> None:
    config = uvicorn.Config("kiln.api.server:app_from_handoff", host="127.0.0.1", port=0, workers=2)
    listener = tcp_socket(config.bind_socket())
    assert listener.proto == socket.IPPROTO_TCP
    assert asyncio.run(_nodelay_of_accepted(listener)) != 0
