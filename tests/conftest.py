"""Shared test configuration. The fixtures themselves live in ingestd.testing (pytest11)."""
