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
