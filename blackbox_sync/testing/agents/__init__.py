"""The emulator's agents: scripted rules in Python (:mod:`.scripted`) or in a file
(:mod:`.file`)."""

# Imported for its effect: it registers the agent-file reader behind ScriptedAgent.from_file.
from blackbox_sync.testing.agents import file as file
