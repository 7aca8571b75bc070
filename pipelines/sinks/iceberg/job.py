"""The CDC → Iceberg sink job (see :mod:`pipelines.sinks.job`), one Iceberg table per topic.

    python -m pipelines.sinks.iceberg.job --bootstrap HOST:PORT --topics-regex '^(pg|my)\\.inventory\\..+' \\
        --namespace cdc --group cdcstack-iceberg-sink --catalog-properties catalog.json --health-port 28190
"""

from __future__ import annotations

import json
from pathlib import Path

from pyiceberg.catalog import Catalog

from pipelines.sinks.iceberg.catalog import load_rest_catalog
from pipelines.sinks.iceberg.writer import IcebergTableWriter
from pipelines.sinks.job import job_arguments, run_job


class LazyCatalog:
    """Loads the catalog on first use, so a catalog still starting delays a table instead of ending the job."""

    def __init__(self, properties: dict[str, str]) -> None:
        self.properties = properties
        self._catalog: Catalog | None = None

    def get(self) -> Catalog:
        if self._catalog is None:
            self._catalog = load_rest_catalog(self.properties)
        return self._catalog


def main() -> None:
    parser = job_arguments(__doc__.splitlines()[0])
    parser.add_argument("--catalog-properties", required=True, type=Path, help="JSON file (it holds the S3 secret)")
    args = parser.parse_args()
    catalog = LazyCatalog(json.loads(args.catalog_properties.read_text()))
    run_job(args, lambda identifier: IcebergTableWriter(catalog.get(), identifier), destination="iceberg")


if __name__ == "__main__":
    main()
