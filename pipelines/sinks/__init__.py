"""One module per destination: `iceberg` (and, with the Delta story, `delta`)."""
