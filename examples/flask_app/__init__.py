"""A Flask support page that relays questions to a BlackBox agent (see README.md here)."""
