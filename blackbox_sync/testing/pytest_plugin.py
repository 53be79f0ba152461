"""pytest plugin (entry point ``pytest11``): a fresh emulator per test.

Override the ``blackbox_agent`` fixture to script the agent::

    @pytest.fixture
    def blackbox_agent():
        return ScriptedAgent([Rule("order", "It shipped.")])

    def test_order(blackbox_emulator):
        ...  # blackbox_emulator.base_url, .token, .api_key, .conversations, ...

Nothing beyond pytest is imported at load time, so the plugin loads even without aiohttp; the
fixture itself then fails with an install hint.
"""

from typing import TYPE_CHECKING, Any, Iterator, Optional

import pytest

if TYPE_CHECKING:
    from blackbox_sync.testing.emulator import Emulator


@pytest.fixture
def blackbox_agent() -> Optional[Any]:
    """The agent ``blackbox_emulator`` starts with; ``None`` means the default echo agent."""
    return None


@pytest.fixture
def blackbox_emulator(blackbox_agent: Optional[Any]) -> Iterator["Emulator"]:
    """A running :class:`~blackbox_sync.testing.Emulator` on a free loopback port, stopped after
    the test (no connection or thread outlives it)."""
    try:
        from blackbox_sync.testing.emulator import Emulator
    except ImportError as exc:
        pytest.fail(
            f"the blackbox_emulator fixture needs aiohttp ({exc}); "
            "install it with: pip install 'blackbox-sync[emulator]'",
            pytrace=False,
        )
    with Emulator(agent=blackbox_agent) as emulator:
        yield emulator
