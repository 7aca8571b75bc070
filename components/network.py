"""`StackNetwork`: what the stack's services share to reach each other."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.runtime import Placement, Runtime


@dataclass(frozen=True)
class StackNetworkArgs:
    placement: Placement
    """Runtime, state dir and toolchain of the stack."""


class StackNetwork(pulumi.ComponentResource):
    """docker: a bridge network the containers join by service alias; process: loopback only."""

    name: pulumi.Output[str]

    def __init__(self, name: str, args: StackNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:StackNetwork", name, None, opts)
        self.docker_network: docker.Network | None = None
        self.docker_network_name = args.placement.docker_network
        if args.placement.runtime is Runtime.DOCKER:
            self.docker_network = docker.Network(
                f"{name}-bridge",
                name=args.placement.docker_network,
                driver="bridge",
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.name = self.docker_network.name
        else:
            self.name = pulumi.Output.from_input("loopback")
        self.register_outputs({"name": self.name})

    def dependency(self) -> list[pulumi.Resource]:
        """What a service must wait for before it can join the network."""
        return [self.docker_network] if self.docker_network is not None else []
