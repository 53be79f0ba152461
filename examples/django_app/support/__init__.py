"""The support app: a page whose view relays each visitor's questions to a BlackBox agent."""
