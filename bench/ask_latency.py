"""ask() round trip on loopback, against a raw send/recv loop on the same server.

The server (a separate process, hand-framed, see ``_server.py``) answers each chat message the
way the service does: the echo of the user's text, then one assistant text. Loops, interleaved
round by round so machine noise hits all alike:

* ``raw``: websocket-client ``send(json.dumps(...))``, two ``recv()`` + ``json.loads``;
* ``websockets``: the same with the ``websockets`` sync client;
* ``blackbox_sync``: ``conv.ask(text, quiet_period=0)`` -- a turn is complete once its text has
  arrived, so this is the library's whole cost: encoding, the reader thread, decoding, the turn
  state and waking the caller.

Overhead = p50(ask) - p50(raw), target under 0.2 ms.

    python bench/ask_latency.py [--asks 2000] [--rounds 3]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import Server, percentiles

import blackbox_sync as bb

INIT = json.dumps(
    {"type": "initialize", "timestamp": "x", "channelId": None, "request": {"callType": "chat"}}
)
TARGET_MS = 0.2


def chat(text: str) -> str:
    return json.dumps(
        {"type": "incomingChatMessage", "timestamp": "x", "channelId": None, "content": text}
    )


def raw_loop(url: str, asks: int) -> List[float]:
    ws = websocket.create_connection(url, skip_utf8_validation=True)
    ws.send(INIT)
    json.loads(ws.recv())
    out = []
    for i in range(asks):
        start = time.perf_counter()
        ws.send(chat(f"question {i}"))
        json.loads(ws.recv())
        json.loads(ws.recv())
        out.append(time.perf_counter() - start)
    ws.close()
    return out


def websockets_loop(url: str, asks: int) -> List[float]:
    from websockets.sync.client import connect

    out = []
    with connect(url, compression=None) as ws:
        ws.send(INIT)
        json.loads(ws.recv())
        for i in range(asks):
            start = time.perf_counter()
            ws.send(chat(f"question {i}"))
            json.loads(ws.recv())
            json.loads(ws.recv())
            out.append(time.perf_counter() - start)
    return out


def blackbox_loop(url: str, asks: int) -> List[float]:
    conv = bb.Conversation(token="bench", url=url, ping_interval=None, quiet_period=0)
    conv.connect(timeout=10)
    out = []
    for i in range(asks):
        start = time.perf_counter()
        reply = conv.ask(f"question {i}", timeout=10)
        out.append(time.perf_counter() - start)
        assert reply.text == "Your order ships tomorrow.", reply
    conv.close()
    return out


LOOPS: Dict[str, Callable[[str, int], List[float]]] = {
    "raw": raw_loop,
    "websockets": websockets_loop,
    "blackbox_sync": blackbox_loop,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--asks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    samples: Dict[str, List[float]] = {name: [] for name in LOOPS}
    with Server("chat", connections=len(LOOPS) * args.rounds) as server:
        for _ in range(args.rounds):
            for name, loop in LOOPS.items():
                samples[name] += loop(server.url, args.asks)

    print(f"ask() round trip: {args.asks} asks x {args.rounds} rounds per loop, loopback")
    table = {name: percentiles(values) for name, values in samples.items()}
    for name, p in table.items():
        mean = statistics.mean(samples[name]) * 1000
        print(
            f"  {name:14s} p50 {p['p50']:.3f} ms  p90 {p['p90']:.3f} ms  "
            f"p99 {p['p99']:.3f} ms  mean {mean:.3f} ms"
        )
    overhead = table["blackbox_sync"]["p50"] - table["raw"]["p50"]
    ratio = table["blackbox_sync"]["p50"] / table["raw"]["p50"]
    verdict = "met" if overhead < TARGET_MS else "MISSED"
    print(
        f"ask() p50 overhead over raw websocket-client: {overhead:+.3f} ms "
        f"({ratio:.2f}x)  (target < {TARGET_MS} ms: {verdict})"
    )
    print(
        f"ask() p50 / websockets sync client: "
        f"{table['blackbox_sync']['p50'] / table['websockets']['p50']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
