"""Layers 1 and 2, pure: the frames as typed messages, their codec, and the sans-IO turn state.

Nothing here does I/O or knows about presentation; everything above builds on it.
"""
