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
