"""One package per destination: `iceberg` and `delta`."""
