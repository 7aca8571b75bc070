"""Alert delivery (spec user story 5): Alertmanager's email, Slack and webhook receivers, each
delivering to a real local capture, and a real fault going from Prometheus's rule to all three and
back to resolved. Every wait polls a receiver with a deadline."""

from __future__ import annotations

import time

import httpx
import psycopg
import pytest
from confluent_kafka.admin import AdminClient

import stack_outputs as out
from testkit.names import unique_name
from tests.support.alerting import Alerting, captured, emails, poll, post_alert, slack_text, utc, webhook_alerts
from tests.support.iceberg import catalog_of
from tests.support.lake import lake_postgres_table
from tests.support.services import service_stopped
from tests.support.sinks import produce
from tests.support.stack import StackOutputs

FAULT_SERVICE = "iceberg-sink"


@pytest.fixture
def alerting(stack: StackOutputs) -> Alerting:
    return Alerting.of(stack)


@pytest.fixture
def test_alert() -> dict[str, dict[str, str]]:
    """A critical pipeline alert of the test's own (its name is unique), as a rule would label it."""
    name = unique_name("CdcTestAlert")
    return {
        "labels": {
            "alertname": name,
            "severity": "critical",
            "team": "data",
            "service": "iceberg-sink",
            "connector": "cdcstack-postgres",
            "table": "pg.inventory.orders",
        },
        "annotations": {
            "summary": f"{name}: pg.inventory.orders is 42.5 s behind its source",
            "description": "source commit to Iceberg lag is 42.5 s (threshold 5 s)",
            "value": "42.5",
            "runbook": "check the iceberg-sink log, then run `make up`",
        },
    }


class TestAlertDelivery:
    def test_an_email_is_delivered_with_the_alert_rendered(self, stack: StackOutputs, alerting: Alerting, test_alert: dict) -> None:
        name = test_alert["labels"]["alertname"]
        post_alert(alerting, test_alert["labels"], test_alert["annotations"])
        (email,) = poll(lambda: emails(alerting, name), f"an email about {name} in the mail capture")
        assert email["Subject"].startswith("[FIRING") and name in email["Subject"]
        assert [recipient["Address"] for recipient in email["To"]] == [stack[out.ALERT_EMAIL_TO]]
        body = email["Text"]
        for expected in ("cdcstack-postgres", "pg.inventory.orders", "42.5", "make up", "critical"):
            assert expected in body, f"{expected!r} not in the email body:\n{body}"

    def test_a_slack_message_is_delivered_in_slacks_shape(self, stack: StackOutputs, alerting: Alerting, test_alert: dict) -> None:
        name = test_alert["labels"]["alertname"]
        post_alert(alerting, test_alert["labels"], test_alert["annotations"])
        (message,) = poll(lambda: captured(alerting, "slack", lambda message: name in slack_text(message)), f"a Slack message about {name}")
        assert message["valid"], message["problem"]
        body = message["body"]
        assert body["channel"] == stack[out.ALERT_SLACK_CHANNEL]
        (attachment,) = body["attachments"]
        assert name in attachment["title"] and attachment["fallback"]
        for expected in ("cdcstack-postgres", "pg.inventory.orders", "42.5", "make up"):
            assert expected in attachment["text"], f"{expected!r} not in the Slack text:\n{attachment['text']}"

    def test_the_webhook_gets_alertmanagers_version_4_payload(self, alerting: Alerting, test_alert: dict) -> None:
        name = test_alert["labels"]["alertname"]
        post_alert(alerting, test_alert["labels"], test_alert["annotations"])
        (message,) = poll(
            lambda: captured(alerting, "webhook", lambda message: any(alert["labels"].get("alertname") == name for alert in webhook_alerts(message))),
            f"a webhook call about {name}",
        )
        assert message["valid"], message["problem"]
        body = message["body"]
        assert body["version"] == "4" and body["status"] == "firing"
        assert body["groupLabels"] == {"alertname": name, "connector": "cdcstack-postgres", "table": "pg.inventory.orders"}
        assert body["commonLabels"] == test_alert["labels"]
        assert body["commonAnnotations"] == test_alert["annotations"]
        (alert,) = body["alerts"]
        assert alert["status"] == "firing" and alert["labels"] == test_alert["labels"] and alert["fingerprint"]
        assert body["externalURL"].startswith("http://127.0.0.1:")

    def test_a_stopped_sink_is_alerted_to_every_receiver_and_resolved(self, stack: StackOutputs, alerting: Alerting) -> None:
        def about_the_fault(alert: dict) -> bool:
            return alert["labels"].get("alertname") == "ServiceDown" and alert["labels"].get("service") == FAULT_SERVICE

        def webhook(status: str) -> list[dict]:
            return captured(
                alerting,
                "webhook",
                lambda message: message["received_at"] > since
                and message["body"].get("status") == status
                and any(about_the_fault(alert) for alert in webhook_alerts(message)),
            )

        def slack(status: str) -> list[dict]:
            return captured(
                alerting,
                "slack",
                lambda message: message["received_at"] > since
                and f"[{status.upper()}" in slack_text(message)
                and "ServiceDown" in slack_text(message)
                and f"Service: {FAULT_SERVICE}" in slack_text(message),
            )

        def mail(status: str) -> list[dict]:
            return [
                email for email in emails(alerting, "ServiceDown") if f"[{status.upper()}" in email["Subject"] and f"Service: {FAULT_SERVICE}" in email["Text"]
            ]

        since = time.time()
        mails_before = {email["ID"] for email in emails(alerting, "ServiceDown")}
        with service_stopped(stack, FAULT_SERVICE):
            stopped_at = time.monotonic()
            poll(lambda: webhook("firing"), f"ServiceDown for {FAULT_SERVICE} at the webhook", timeout=90)
            to_webhook = time.monotonic() - stopped_at
            poll(lambda: slack("firing"), f"ServiceDown for {FAULT_SERVICE} on Slack", timeout=30)
            to_slack = time.monotonic() - stopped_at
            poll(lambda: [email for email in mail("firing") if email["ID"] not in mails_before], f"ServiceDown for {FAULT_SERVICE} by email", timeout=30)
            to_email = time.monotonic() - stopped_at
        restored_at = time.monotonic()
        poll(lambda: webhook("resolved"), f"ServiceDown for {FAULT_SERVICE} resolved at the webhook", timeout=120)
        poll(lambda: slack("resolved"), f"ServiceDown for {FAULT_SERVICE} resolved on Slack", timeout=30)
        poll(lambda: [email for email in mail("resolved") if email["ID"] not in mails_before], f"ServiceDown for {FAULT_SERVICE} resolved by email", timeout=30)
        resolved = time.monotonic() - restored_at
        print(f"fault → notification: webhook {to_webhook:.1f}s, slack {to_slack:.1f}s, email {to_email:.1f}s; restore → resolved {resolved:.1f}s")


RULES = {"ConnectorTaskNotRunning", "CdcLagHigh", "SinkStalled", "DeadLettersGrowing", "ServiceDown"}
SCRAPED_SERVICES = {"kafka", "connect", "iceberg-sink", "delta-sink", "alertmanager", "prometheus"}


def test_prometheus_loads_every_rule_and_scrapes_every_service_with_metrics(alerting: Alerting) -> None:
    rules = httpx.get(f"{alerting.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"]: rule["health"] for group in rules for rule in group["rules"] if rule["type"] == "alerting"}
    assert RULES <= set(loaded) and all(loaded[name] == "ok" for name in RULES), loaded

    def targets_up() -> list[dict[str, str]]:
        active = httpx.get(f"{alerting.prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        health = {target["labels"].get("service"): target["health"] for target in active}
        return [health] if all(health.get(service) == "up" for service in SCRAPED_SERVICES) else []

    poll(targets_up, f"every one of {sorted(SCRAPED_SERVICES)} scraped and up", timeout=30)


def prometheus_alerts(alerting: Alerting, name: str, **labels: str) -> list[dict]:
    alerts = httpx.get(f"{alerting.prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return [
        alert
        for alert in alerts
        if alert["labels"].get("alertname") == name and all(alert["labels"].get(key) == value for key, value in labels.items())
    ]


def test_a_paused_connector_fires_connector_task_not_running_until_it_resumes(stack: StackOutputs, alerting: Alerting) -> None:
    connector = stack[out.AVRO_CONNECTOR]
    connect = stack.connect_url
    httpx.put(f"{connect}/connectors/{connector}/pause", timeout=10).raise_for_status()
    try:
        firing = poll(
            lambda: [alert for alert in prometheus_alerts(alerting, "ConnectorTaskNotRunning", connector=connector) if alert["state"] == "firing"],
            f"ConnectorTaskNotRunning firing for the paused {connector}",
        )
        assert {alert["labels"]["status"] for alert in firing} == {"paused"}
        assert all(alert["labels"]["severity"] == "critical" and alert["annotations"]["runbook"] for alert in firing)
    finally:
        httpx.put(f"{connect}/connectors/{connector}/resume", timeout=10).raise_for_status()
    stack.require_connector_running(connector, settle_seconds=30)
    poll(lambda: [] if prometheus_alerts(alerting, "ConnectorTaskNotRunning", connector=connector) else ["gone"], f"the alert for {connector} gone")


def test_a_dead_letter_fires_dead_letters_growing_for_its_table(
    stack: StackOutputs, pg: psycopg.Connection, kafka_admin: AdminClient, alerting: Alerting
) -> None:
    with lake_postgres_table(stack, pg, kafka_admin, catalog_of(stack), "id integer PRIMARY KEY, name text") as table:
        produce(stack.kafka_bootstrap, table.topic, [(b'{"id": 1}', b"\xde\xad\xbe\xef")])
        (alert,) = poll(
            lambda: [alert for alert in prometheus_alerts(alerting, "DeadLettersGrowing", table=table.topic) if alert["state"] == "firing"],
            f"DeadLettersGrowing for {table.topic}",
        )
        assert alert["labels"]["sink"] == "iceberg" and alert["labels"]["service"] == "iceberg-sink"
        assert table.topic in alert["annotations"]["summary"]


def alertmanager_alerts(alerting: Alerting, name: str) -> list[dict]:
    response = httpx.get(f"{alerting.alertmanager}/api/v2/alerts", params={"filter": f'alertname="{name}"'}, timeout=10)
    response.raise_for_status()
    return response.json()


def test_a_silenced_alert_is_held_back_while_another_is_delivered(alerting: Alerting, test_alert: dict) -> None:
    silenced, delivered = unique_name("CdcSilenced"), test_alert["labels"]["alertname"]
    now = time.time()
    silence = httpx.post(
        f"{alerting.alertmanager}/api/v2/silences",
        json={
            "matchers": [{"name": "alertname", "value": silenced, "isRegex": False, "isEqual": True}],
            "startsAt": utc(now - 1),
            "endsAt": utc(now + 600),
            "createdBy": "test_alerting",
            "comment": "a test's own silence",
        },
        timeout=10,
    )
    silence.raise_for_status()
    silence_id = silence.json()["silenceID"]
    try:
        post_alert(alerting, {**test_alert["labels"], "alertname": silenced}, test_alert["annotations"])
        post_alert(alerting, test_alert["labels"], test_alert["annotations"])
        poll(
            lambda: captured(alerting, "webhook", lambda message: any(alert["labels"]["alertname"] == delivered for alert in webhook_alerts(message))),
            f"{delivered} at the webhook",
        )
        (held,) = alertmanager_alerts(alerting, silenced)
        assert held["status"]["state"] == "suppressed" and held["status"]["silencedBy"] == [silence_id]
        # Both went in together with the same grouping timers: the silenced one would be there by now.
        assert not captured(alerting, "webhook", lambda message: any(alert["labels"]["alertname"] == silenced for alert in webhook_alerts(message)))
    finally:
        httpx.delete(f"{alerting.alertmanager}/api/v2/silence/{silence_id}", timeout=10).raise_for_status()


def test_service_down_inhibits_the_other_alerts_of_its_service(alerting: Alerting, test_alert: dict) -> None:
    service = unique_name("svc")
    down = {"alertname": "ServiceDown", "severity": "critical", "team": "cdc", "service": service}
    lag = {**test_alert["labels"], "severity": "warning", "service": service}
    post_alert(alerting, down, {"summary": f"{service} is down"})
    post_alert(alerting, lag, test_alert["annotations"])
    try:
        (inhibited,) = poll(
            lambda: [alert for alert in alertmanager_alerts(alerting, lag["alertname"]) if alert["status"]["inhibitedBy"]],
            f"{lag['alertname']} inhibited by ServiceDown of {service}",
        )
        (source,) = [alert for alert in alertmanager_alerts(alerting, "ServiceDown") if alert["labels"]["service"] == service]
        assert inhibited["status"]["state"] == "suppressed" and inhibited["status"]["inhibitedBy"] == [source["fingerprint"]]
    finally:
        post_alert(alerting, down, {"summary": f"{service} is down"}, resolved=True)
        post_alert(alerting, lag, test_alert["annotations"], resolved=True)
