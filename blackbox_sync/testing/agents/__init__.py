"""The emulator's agents: scripted rules in Python (:mod:`.scripted`) or in a file
(:mod:`.file`)."""
