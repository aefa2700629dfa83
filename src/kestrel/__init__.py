"""Kestrel: threat detection, hunting and response on one columnar pipeline."""

__version__ = "0.1.0"
