"""The REST fake's state with its test controls: :class:`RestState` (``emulator.rest``)."""

from typing import Any, Dict, Optional, Sequence, Tuple

from blackbox_sync.testing.rest import results as rest_results
from blackbox_sync.testing.rest.state import RestStore, now


class RestState(RestStore):
    """:class:`~.state.RestStore`, plus the controls that move scheduled calls along and seed
    call results (they need :mod:`.results`, which works on the store)."""

    def complete_call(self, call_id: str, **outcome: Any) -> Dict[str, Any]:
        """End scheduled call ``call_id`` now (``status=``, ``transcript=[(speaker, text)]``,
        ``error_message=``, ``result=``): it becomes a call result and fires the result webhook."""
        return rest_results.complete_call(self, call_id, **outcome)

    def advance_call(self, call_id: str) -> str:
        """Move scheduled call ``call_id`` one status on (Queued → Running → Completed) and
        return its new status: with ``call_step_seconds = None`` a test walks a call through
        each status and looks at it in between, with no timing involved."""
        return rest_results.advance_call(self, call_id)

    def add_call_result(
        self,
        agent_id: str = "agent-seeded",
        *,
        status: str = "Completed",
        call_type: str = "chat",
        transcript: Sequence[Tuple[str, str]] = (),
        additional_data: Optional[Dict[str, Any]] = None,
        endpoint: Optional[str] = None,
        call_id: Optional[str] = None,
        created: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Seed one call result (for search and paging tests); returns its wire dict."""
        with self.lock:
            return rest_results.finish(
                self,
                call_id=call_id or self.new_id("call"),
                agent_id=agent_id,
                call_type=call_type,
                status=status,
                created=created or now(),
                endpoint=endpoint,
                additional_data=additional_data,
                transcript=transcript,
            )
