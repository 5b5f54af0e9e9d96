"""The durable state of every recording, its conversation mapping and sink deliveries."""

from ingestd.store.sqlite import RecordingRow, Store

__all__ = ["RecordingRow", "Store"]
