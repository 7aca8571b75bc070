"""`KafkaTopic`: a topic the stack itself needs, as a Pulumi resource (the schema registry's events).

The broker does not create topics on demand (see `components.kafka.BROKER_SETTINGS`), so a service
that only produces, with no admin client of its own, gets its topic here before it starts.

The natural id is the topic name. create adopts a topic that already exists; delete of a topic
already gone (or of a broker already gone, whose own delete removed its data) is success. A new
partition count is a new topic: Kafka cannot take partitions away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from providers.base import DeclaredProvider, DeclaredResource, Input, ResourceSchema
from providers.errors import KafkaTopicError

ADMIN_TIMEOUT_SECONDS = 30.0
SCHEMA = ResourceSchema(
    id_key="topic",
    inputs=(Input("topic"), Input("bootstrap_servers", diffed=False), Input("partitions", default=1)),
    replace_on_change=True,
)
"""A new name or partition count is a new topic; a new bootstrap address only changes how the broker is reached."""


def _admin(bootstrap_servers: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": int(ADMIN_TIMEOUT_SECONDS * 1000)})


def _error_code(error: BaseException) -> Any:
    from confluent_kafka import KafkaException

    return error.args[0].code() if isinstance(error, KafkaException) and error.args else None


class KafkaTopicProvider(DeclaredProvider):
    schema = SCHEMA

    def create(self, props: dict[str, Any]) -> CreateResult:
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        topic, bootstrap = props["topic"], props["bootstrap_servers"]
        wanted = NewTopic(topic, num_partitions=int(props.get("partitions") or 1), replication_factor=1)
        admin = _admin(bootstrap)  # held while its future is pending: a collected client cancels it
        try:
            admin.create_topics([wanted], request_timeout=ADMIN_TIMEOUT_SECONDS)[topic].result(timeout=ADMIN_TIMEOUT_SECONDS)
        except KafkaException as error:
            if _error_code(error) != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaTopicError(f"kafka at {bootstrap}: cannot create topic {topic}: {error}") from error
        except TimeoutError as error:
            raise KafkaTopicError(f"kafka at {bootstrap} did not answer within {ADMIN_TIMEOUT_SECONDS:.0f}s creating topic {topic}") from error
        return CreateResult(id_=topic, outs=props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=news)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from confluent_kafka import KafkaException

        try:
            listed = _admin(props["bootstrap_servers"]).list_topics(id_, timeout=ADMIN_TIMEOUT_SECONDS).topics
        except KafkaException:
            # A broker that does not answer tells nothing about the topic: keep the state.
            return ReadResult(id_, props)
        found = listed.get(id_)
        if found is None or found.error is not None:
            return ReadResult(None, {})
        return ReadResult(id_, {**props, "partitions": len(found.partitions)})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from confluent_kafka import KafkaError, KafkaException

        bootstrap = props["bootstrap_servers"]
        admin = _admin(bootstrap)
        try:
            admin.delete_topics([id_], request_timeout=ADMIN_TIMEOUT_SECONDS)[id_].result(timeout=ADMIN_TIMEOUT_SECONDS)
        except (KafkaException, TimeoutError) as error:
            # A broker that does not answer is gone (destroy removes it next), and its data with it.
            if _error_code(error) not in (None, KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError.UNKNOWN_TOPIC_OR_PART):
                raise KafkaTopicError(f"kafka at {bootstrap}: cannot delete topic {id_}: {error}") from error


@dataclass(frozen=True)
class KafkaTopicArgs:
    topic: str
    """Topic name: the natural id."""
    bootstrap_servers: pulumi.Input[str]
    """The broker as the Pulumi program reaches it (127.0.0.1 on both runtimes)."""
    partitions: int = 1


class KafkaTopic(DeclaredResource, module="cdcstack", name="KafkaTopic"):
    def __init__(self, name: str, args: KafkaTopicArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(KafkaTopicProvider(), name, args, opts)
