"""The emulator's REST side: routes, handlers, the REST state, text chat and call results."""
