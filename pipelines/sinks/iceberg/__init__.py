"""The Iceberg destination: writer, catalog loading, snapshot reads, and the sink job."""

from pipelines.sinks.iceberg.writer import IcebergTableWriter

__all__ = ["IcebergTableWriter"]
