"""Alert delivery (spec user story 5): Alertmanager's email, Slack and webhook receivers, each
delivering to a real local capture, and a real fault going from Prometheus's rule to all three and
back to resolved. Every wait polls a receiver with a deadline."""

from __future__ import annotations

import time

import pytest

import stack_outputs as out
from testkit.names import unique_name
from tests.support.alerting import Alerting, captured, emails, poll, post_alert, slack_text, webhook_alerts
from tests.support.services import service_stopped
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
        assert alert["status"] == "firing" and alert["endsAt"].startswith("0001-01-01") and alert["fingerprint"]
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
                lambda message: message["received_at"] > since and "ServiceDown" in slack_text(message) and status.upper() in slack_text(message),
            )

        def mail(status: str) -> list[dict]:
            return [email for email in emails(alerting, "ServiceDown") if f"[{status.upper()}" in email["Subject"] and FAULT_SERVICE in email["Text"]]

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
