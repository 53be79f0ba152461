"""The case's scripted tools: each request gets its canned (or computed) answer, and both go
into the transcript."""

import threading
import time
from typing import Any, Callable, Dict

from blackbox_sync.qa import refs, templates
from blackbox_sync.qa.attempt.state import AttemptState
from blackbox_sync.qa.spec import ToolScript


class ScriptedTools:
    """Tool handlers for a conversation, answering as the case's ``tools`` say."""

    def __init__(self, state: AttemptState) -> None:
        self.state = state
        self._uses: Dict[str, int] = {}
        self._lock = threading.Lock()  # tools run on the conversation's pool

    def handlers(self) -> Dict[str, Callable[..., Any]]:
        """One handler per scripted tool, by name."""
        return {name: self.handler(name, script) for name, script in self.state.case.tools.items()}

    def handler(self, name: str, script: ToolScript) -> Callable[..., Any]:
        """The handler of tool ``name``: it logs the request and its answer."""
        recorder = self.state.recorder

        def handle(**args: Any) -> Any:
            recorder.log_request(time.monotonic(), name, args, by="handler")
            with self._lock:
                self._uses[name] = self._uses.get(name, 0) + 1
                use = self._uses[name]
            try:
                answer = self.answer(script, args, use)
            except Exception as exc:
                recorder.add_entry(time.monotonic(), "tool_response", name, {"error": str(exc)})
                raise
            recorder.add_entry(time.monotonic(), "tool_response", name, answer)
            return answer

        return handle

    def answer(self, script: ToolScript, args: Dict[str, Any], use: int) -> Any:
        """The answer to the ``use``-th request (from 1) of a tool scripted by ``script``."""
        if script.handler is not None:
            return refs.as_callable(script.handler, self.state.job.base_dir)(**args)
        if script.error is not None:
            return {"error": script.error}
        if script.results is not None:
            canned = script.results[min(use, len(script.results)) - 1]
        else:
            canned = script.result
        return templates.render(canned, {**self.state.vars, "args": args})
