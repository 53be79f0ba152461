"""The package version, read by setup.cfg and exported as ``blackbox_sync.__version__``."""

__version__ = "0.1.0"
