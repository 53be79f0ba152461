"""A support page in Flask whose view relays each visitor's questions to a BlackBox agent.

Run it against the bundled emulator (no account needed)::

    python examples/flask_app/app.py --emulator          # then open the URL it prints

or against the service, with a web integration token (or an API key and an agent id)::

    BLACKBOX_TOKEN=... python examples/flask_app/app.py
    BLACKBOX_API_KEY=... BLACKBOX_AGENT_ID=... python examples/flask_app/app.py

Set ``BLACKBOX_TALK_FIRST=1`` when the agent greets first (feature ``talkFirst``).

Pages: ``GET/POST /support`` (the page and its form), ``POST /support/ask`` (JSON, for a script
on the page), ``POST /support/end`` (end the conversation), and ``POST /blackbox/webhook`` (the
agent's webhook tools, guarded by the ``X-Webhook-Secret`` header).

How it shares things between threads (Flask serves requests on many threads):

* one :class:`blackbox_sync.Client` per process, made at start-up and shared by every request
  (it keeps no per-request state);
* one :class:`blackbox_sync.Conversation` per visitor, kept in a :class:`ConversationRegistry`;
  concurrent questions from one visitor are answered one after the other by the library.
"""

import argparse
import atexit
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from flask import Flask, jsonify, redirect, render_template, request, session, url_for

if __package__ in (None, ""):  # run as a script: make `flask_app` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import blackbox_sync as bb
from blackbox_sync.contrib.conversations import ConversationRegistry
from blackbox_sync.contrib.flask import webhook_view
from blackbox_sync.rest import webhooks
from flask_app import order_tools

DEFAULTS: Dict[str, Any] = {
    "BLACKBOX_TOKEN": None,
    "BLACKBOX_API_KEY": None,
    "BLACKBOX_AGENT_ID": None,
    "BLACKBOX_BASE_URL": None,
    "BLACKBOX_ASK_TIMEOUT": 30.0,
    "BLACKBOX_QUIET_PERIOD": 1.5,
    "BLACKBOX_TALK_FIRST": False,
    "WEBHOOK_SECRET": None,
}


def create_app(config: Optional[Mapping[str, Any]] = None) -> Flask:
    """The Flask app; settings come from ``config``, then the environment, then defaults."""
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.update({k: os.environ[k] for k in DEFAULTS if os.environ.get(k)})
    app.config["SECRET_KEY"] = os.environ.get("FLASK_SECRET_KEY") or secrets.token_hex(32)
    app.config.update(config or {})
    if not app.config["WEBHOOK_SECRET"]:
        app.config["WEBHOOK_SECRET"] = secrets.token_hex(16)  # unguessable unless you set one

    registry = ConversationRegistry(
        _conversation_factory(app), talk_first=_flag(app.config["BLACKBOX_TALK_FIRST"])
    )
    app.extensions["blackbox_registry"] = registry
    atexit.register(registry.close_all)

    hooks = webhooks.WebhookHandler(
        required_headers={"X-Webhook-Secret": app.config["WEBHOOK_SECRET"]}
    )
    hooks.tool("checkOrderStatus")(order_tools.checkOrderStatus)
    app.add_url_rule("/blackbox/webhook", view_func=webhook_view(hooks), methods=["POST"])

    @app.route("/")
    def index() -> Any:
        return redirect(url_for("support"))

    @app.route("/support", methods=["GET", "POST"])
    def support() -> Any:
        error = None
        if request.method == "POST":
            question = request.form.get("question", "").strip()
            if question:
                try:
                    registry.ask(_visitor(), question, timeout=app.config["BLACKBOX_ASK_TIMEOUT"])
                except bb.BlackBoxError as exc:  # shown on the page; the visitor can retry
                    error = f"The assistant is not available right now ({exc})."
        return render_template("support.html", transcript=_shown(_visitor()), error=error)

    @app.route("/support/ask", methods=["POST"])
    def ask() -> Any:
        body = request.get_json(silent=True) or {}
        question = str(body.get("question", "")).strip()
        if not question:
            return jsonify(error="question is required"), 400
        try:
            reply = registry.ask(_visitor(), question, timeout=app.config["BLACKBOX_ASK_TIMEOUT"])
        except bb.AskTimeout as exc:
            partial = exc.reply.text if exc.reply is not None else ""
            return jsonify(error="the agent did not finish in time", partial=partial), 504
        except bb.BlackBoxError as exc:
            return jsonify(error=str(exc)), 502
        return jsonify(reply=reply.text, reason=str(reply.reason), ended=reply.ended)

    @app.route("/support/end", methods=["POST"])
    def end() -> Any:
        result = registry.end(_visitor())
        if request.is_json:
            return jsonify(ended=True, status=result.status if result is not None else None)
        return redirect(url_for("support"))

    def _shown(visitor: str) -> List[bb.TextMessage]:
        """The visitor's conversation as the page shows it: final texts, fillers left out."""
        conversation = registry.get(visitor)
        if conversation is None:
            return []
        rule = conversation.turn_rule
        return [
            m for m in conversation.transcript if not (m.from_assistant and rule.is_filler(m.text))
        ]

    return app


def _flag(value: Any) -> bool:
    """A setting that may come from the environment as text."""
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")


def _visitor() -> str:
    """This visitor's id, kept in the signed session cookie."""
    if "visitor" not in session:
        session["visitor"] = secrets.token_urlsafe(16)
    return str(session["visitor"])


def _conversation_factory(app: Flask) -> Any:
    """How a visitor's conversation is opened: with a token, or with the shared Client."""
    config = app.config
    client: Optional[bb.Client] = None
    if not config["BLACKBOX_TOKEN"] and config["BLACKBOX_API_KEY"]:
        # One REST client for the whole process; the dev endpoint is experimental.
        client = bb.Client(api_key=config["BLACKBOX_API_KEY"], base_url=config["BLACKBOX_BASE_URL"])
        app.extensions["blackbox_client"] = client

    def open_conversation(visitor: str) -> bb.Conversation:
        options: Dict[str, Any] = {
            "additional_data": {"visitorId": visitor, "channel": "support-page"},
            "quiet_period": float(config["BLACKBOX_QUIET_PERIOD"]),
        }
        if config["BLACKBOX_TOKEN"]:
            conversation = bb.Conversation(
                token=config["BLACKBOX_TOKEN"], base_url=config["BLACKBOX_BASE_URL"], **options
            )
        elif client is not None and config["BLACKBOX_AGENT_ID"]:
            conversation = client.conversation(config["BLACKBOX_AGENT_ID"], **options)
        else:
            raise bb.UsageError(
                "set BLACKBOX_TOKEN, or BLACKBOX_API_KEY and BLACKBOX_AGENT_ID (or use --emulator)"
            )
        conversation.tool("checkOrderStatus", order_tools.checkOrderStatus)
        return conversation

    return open_conversation


def main(argv: Optional[List[str]] = None) -> int:
    """Serve the app; ``--emulator`` starts a local emulator with the order-support agent."""
    from werkzeug.serving import make_server

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emulator", action="store_true", help="chat with a local emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    args = parser.parse_args(argv)

    emulator = None
    config: Dict[str, Any] = {}
    if args.emulator:
        from blackbox_sync.testing import Emulator, ScriptedAgent

        agent_file = Path(__file__).resolve().parent.parent / "agents" / "order-support.yaml"
        emulator = Emulator(ScriptedAgent.from_file(agent_file)).start()
        config = {
            "BLACKBOX_TOKEN": emulator.token,
            "BLACKBOX_BASE_URL": emulator.base_url,
            "BLACKBOX_TALK_FIRST": True,  # the order-support agent greets first
        }
    app = create_app(config)
    server = make_server(args.host, args.port, app, threaded=True)
    print(f"Support page: http://{args.host}:{server.server_port}/support", flush=True)
    if emulator is not None:
        print(f"(agent: the local emulator on {emulator.base_url})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopping.", flush=True)
    finally:
        server.server_close()
        app.extensions["blackbox_registry"].close_all()
        if emulator is not None:
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
