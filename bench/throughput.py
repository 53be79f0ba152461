"""Inbound throughput: frames decoded into typed messages and delivered to a callback, per second.

Every loop reads the same frames from the same server in this one run, so the figures are ratios,
not absolute claims:

* ``raw``: websocket-client ``recv()`` + ``json.loads`` (UTF-8 checked by Python's decode);
* ``raw-validating``: the same with websocket-client's own (pure-Python) UTF-8 validation;
* ``naive-app``: ``websocket.WebSocketApp`` with ``json.loads`` in ``on_message``;
* ``websockets``: the ``websockets`` library's sync client, ``recv()`` + ``json.loads``;
* ``blackbox_sync``: a ``Conversation`` whose ``on("text")`` callback counts typed ``TextMessage``s.

The server is a separate process that completes the WebSocket handshake and then writes
pre-framed messages as fast as the kernel takes them, so the client is the only thing measured.
It frames bytes by hand on purpose: a server library's per-message cost would cap every loop.

    python bench/throughput.py [--frames 50000] [--rounds 3]
"""

import argparse
import base64
import hashlib
import json
import multiprocessing
import socket
import statistics
import sys
import threading
import time
from typing import Callable, Dict, List

import websocket

import blackbox_sync as bb

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked server frame."""
    size = len(payload)
    if size < 126:
        header = bytes([0x80 | opcode, size])
    elif size < 65536:
        header = bytes([0x80 | opcode, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 127]) + size.to_bytes(8, "big")
    return header + payload


def stream(count: int) -> bytes:
    """A ``connection`` event, ``count`` assistant texts, and a close frame."""
    frames = [
        json.dumps(
            {
                "type": "event",
                "timestamp": "2025-06-09T10:00:00.000Z",
                "channelId": None,
                "name": "connection",
                "data": {"recordId": "bench"},
            }
        ).encode()
    ]
    for i in range(count):
        frames.append(
            json.dumps(
                {
                    "type": "text",
                    "timestamp": "2025-06-09T10:00:01.123Z",
                    "channelId": None,
                    "content": {
                        "source": "assistant",
                        "text": f"Sentence number {i} of the agent's long, split reply"
                        " — ünïcode too.",
                    },
                },
                ensure_ascii=False,
            ).encode()
        )
    return b"".join(frame(f) for f in frames) + frame(b"\x03\xe8", opcode=0x8)


def serve(listener: socket.socket, count: int, connections: int) -> None:
    """Accept ``connections`` clients one after another and blast the stream at each."""
    data = stream(count)
    for _ in range(connections):
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key")
            )
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            conn.sendall(data)
            conn.settimeout(10)
            try:
                while conn.recv(65536):  # drain until the client closes
                    pass
            except OSError:
                pass


def raw_loop(url: str, count: int, validate: bool) -> None:
    ws = websocket.create_connection(url, skip_utf8_validation=not validate)
    for _ in range(count + 1):
        json.loads(ws.recv())
    ws.close()


def websockets_loop(url: str, count: int) -> None:
    from websockets.sync.client import connect

    with connect(url, compression=None, max_size=None) as ws:
        for _ in range(count + 1):
            json.loads(ws.recv())


def naive_app_loop(url: str, count: int) -> None:
    seen = [0]

    def on_message(app: websocket.WebSocketApp, message: str) -> None:
        json.loads(message)
        seen[0] += 1
        if seen[0] == count + 1:
            app.close()

    websocket.WebSocketApp(url, on_message=on_message).run_forever()


def blackbox_loop(url: str, count: int) -> None:
    done = threading.Event()
    seen = [0]

    def on_text(message: bb.TextMessage) -> None:
        seen[0] += 1
        if seen[0] == count:
            done.set()

    conv = bb.Conversation(token="bench", url=url, ping_interval=None)
    conv.on(bb.TextMessage, on_text)
    conv.connect(timeout=10)
    if not done.wait(120):
        raise RuntimeError(f"only {seen[0]} of {count} frames arrived")
    conv.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    loops: Dict[str, Callable[[str, int], None]] = {
        "raw": lambda url, n: raw_loop(url, n, validate=False),
        "raw-validating": lambda url, n: raw_loop(url, n, validate=True),
        "naive-app": naive_app_loop,
        "websockets": websockets_loop,
        "blackbox_sync": blackbox_loop,
    }
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    url = f"ws://127.0.0.1:{listener.getsockname()[1]}/api/v1/ws/webCall"
    server = multiprocessing.Process(
        target=serve, args=(listener, args.frames, len(loops) * args.rounds), daemon=True
    )
    server.start()

    rates: Dict[str, List[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):  # interleaved, so drift in machine load hits every loop alike
        for name, loop in loops.items():
            start = time.perf_counter()
            loop(url, args.frames)
            rates[name].append(args.frames / (time.perf_counter() - start))
    server.join(30)
    listener.close()

    best = {name: max(values) for name, values in rates.items()}
    fastest_raw = max(best["raw"], best["raw-validating"])
    print(f"{args.frames} frames x {args.rounds} rounds, best round per loop (median in brackets)")
    for name, values in rates.items():
        print(f"  {name:15s} {best[name]:>10,.0f} frames/s  ({statistics.median(values):,.0f})")
    ours = best["blackbox_sync"]
    print(f"blackbox_sync / fastest raw loop: {ours / fastest_raw:.2f}x  (target >= 0.7)")
    print(f"blackbox_sync / naive WebSocketApp: {ours / best['naive-app']:.2f}x  (target >= 3)")
    print(f"blackbox_sync / websockets sync client: {ours / best['websockets']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
