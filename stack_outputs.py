"""Stack output names: the contract between `__main__.py` (which exports them) and the tests."""

RUNTIME = "runtime"
STATE_DIR = "state_dir"
SERVICE_LOGS = "service_logs"

POSTGRES_DSN = "postgres_dsn"
POSTGRES_HOST = "postgres_host"
POSTGRES_PORT = "postgres_port"

MYSQL_DSN = "mysql_dsn"
MYSQL_HOST = "mysql_host"
MYSQL_PORT = "mysql_port"

KAFKA_BOOTSTRAP = "kafka_bootstrap"

SERVICE_PORTS = "service_ports"
"""{service: [ports]} of every service the stack runs, for the tests that check they are freed."""

CONNECT_URL = "connect_url"
CONNECTOR_STATUS_URL = "connector_status_url"
"""GET it for every connector's and task's state (what monitoring alerts on)."""
POSTGRES_CONNECTOR = "postgres_connector"
MYSQL_CONNECTOR = "mysql_connector"
POSTGRES_TOPIC_PREFIX = "postgres_topic_prefix"
MYSQL_TOPIC_PREFIX = "mysql_topic_prefix"

S3_ENDPOINT = "s3_endpoint"
S3_ACCESS_KEY_ID = "s3_access_key_id"
S3_SECRET_ACCESS_KEY = "s3_secret_access_key"
S3_REGION = "s3_region"
WAREHOUSE = "warehouse"
"""`s3://<bucket>/`: where Iceberg (and later Delta) tables live."""
ICEBERG_CATALOG_URI = "iceberg_catalog_uri"
ICEBERG_CATALOG_PROPERTIES = "iceberg_catalog_properties"
"""Everything `pyiceberg.catalog.load_catalog("cdcstack", **properties)` needs (secret: has the S3 key)."""
