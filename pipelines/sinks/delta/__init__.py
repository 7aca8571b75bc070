"""The Delta Lake destination: Spark types for Debezium columns, the writer (one MERGE per batch on
a Spark session), and the sink job that owns that session."""
