"""Monitoring of the stack: alert rules, JMX exporter configs, and the webhook capture service."""
