"""Tool dispatch latency: from the server writing a ``websocketToolRequest`` to its reading the
``websocketToolResponse``, timed by the server (a separate process, see ``_server.py``).

* ``raw``: a websocket-client loop that decodes the request, calls the tool function and sends
  the response itself, on one thread;
* ``blackbox_sync``: a ``Conversation`` with ``@conv.tool``: the reader thread decodes and hands
  the request to the tool pool, a pool thread runs the handler and sends the answer.

    python bench/tool_dispatch.py [--calls 2000] [--rounds 3]
"""

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List

import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import Server, percentiles

import blackbox_sync as bb

INIT = json.dumps(
    {"type": "initialize", "timestamp": "x", "channelId": None, "request": {"callType": "chat"}}
)


def check_order_status(n: int) -> Dict[str, Any]:
    return {"status": "shipped", "n": n}


def raw_client(url: str, calls: int) -> None:
    ws = websocket.create_connection(url, skip_utf8_validation=True)
    ws.send(INIT)
    json.loads(ws.recv())
    for _ in range(calls):
        request = json.loads(ws.recv())["content"]
        result = check_order_status(**request["args"])
        ws.send(
            json.dumps(
                {
                    "type": "websocketToolResponse",
                    "timestamp": "x",
                    "channelId": None,
                    "content": {"id": request["id"], "result": result},
                }
            )
        )
    ws.close()


def blackbox_client(url: str, calls: int) -> None:
    done = threading.Event()
    seen = [0]
    conv = bb.Conversation(token="bench", url=url, ping_interval=None)

    def answered(text: str) -> None:
        # Count answers as they go out: closing once the last tool returned could cut off its
        # answer, which the server is still waiting for.
        if '"websocketToolResponse"' in text:
            seen[0] += 1
            if seen[0] == calls:
                done.set()

    conv.tool("checkOrderStatus", check_order_status)
    conv.on_frame_sent(answered)
    conv.connect(timeout=10)
    if not done.wait(120):
        raise RuntimeError(f"only {seen[0]} of {calls} tool calls arrived")
    conv.close()


CLIENTS: Dict[str, Callable[[str, int], None]] = {
    "raw": raw_client,
    "blackbox_sync": blackbox_client,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    samples: Dict[str, List[float]] = {name: [] for name in CLIENTS}
    for _ in range(args.rounds):
        for name, client in CLIENTS.items():
            with Server("tool", connections=1, count=args.calls) as server:
                client(server.url, args.calls)
                samples[name] += server.timings()

    print(f"tool dispatch: {args.calls} calls x {args.rounds} rounds, timed by the server")
    table = {name: percentiles(values) for name, values in samples.items()}
    for name, p in table.items():
        print(f"  {name:14s} p50 {p['p50']:.3f} ms  p90 {p['p90']:.3f} ms  p99 {p['p99']:.3f} ms")
    overhead = table["blackbox_sync"]["p50"] - table["raw"]["p50"]
    ratio = table["blackbox_sync"]["p50"] / table["raw"]["p50"]
    print(f"tool dispatch p50 overhead over a raw loop: {overhead:+.3f} ms ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
