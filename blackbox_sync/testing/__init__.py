"""A local, strict emulator of the BlackBox service, for tests and offline demos (extra ``emulator``)."""
