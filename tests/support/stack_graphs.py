"""The stack's components built under Pulumi mocks, one builder per component (shared by the unit tests)."""

from __future__ import annotations

import pulumi

from components.kafka import Kafka, KafkaArgs
from components.mysql import MySql, MySqlArgs
from components.network import StackNetwork, StackNetworkArgs
from components.postgres import Postgres, PostgresArgs
from components.runtime import Placement
from tests.support.pulumi_mocks import Graph, build

POSTGRES_PASSWORD = "pg-secret"
MYSQL_PASSWORD = "my'secret"


def network_in(placement: Placement, opts: pulumi.ResourceOptions) -> StackNetwork:
    return StackNetwork("network", StackNetworkArgs(placement=placement), opts=opts)


def postgres_graph(placement: Placement) -> Graph[Postgres]:
    return build(
        lambda opts: Postgres(
            "postgres",
            PostgresArgs(
                placement=placement,
                network=network_in(placement, opts),
                port=25432,
                password=pulumi.Output.secret(POSTGRES_PASSWORD),
            ),
            opts=opts,
        )
    )


def mysql_graph(placement: Placement) -> Graph[MySql]:
    return build(
        lambda opts: MySql(
            "mysql",
            MySqlArgs(
                placement=placement,
                network=network_in(placement, opts),
                port=23306,
                root_password=pulumi.Output.secret(MYSQL_PASSWORD),
            ),
            opts=opts,
        )
    )


def kafka_graph(placement: Placement) -> Graph[Kafka]:
    return build(
        lambda opts: Kafka(
            "kafka",
            KafkaArgs(placement=placement, network=network_in(placement, opts), port=29092, controller_port=29093),
            opts=opts,
        )
    )
