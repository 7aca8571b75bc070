"""The process runtime's alerting tests on the docker stack: Prometheus scraping the services' containers
by their network aliases, every rule loaded, a paused connector and a dead letter firing their alerts,
and alerts delivered end to end by Alertmanager's container to the mail and webhook captures' (email,
Slack's shape, the webhook's version 4 payload), a stopped sink's container alerted and resolved."""

from __future__ import annotations

from tests.integration.test_alerting import *  # noqa: F403
