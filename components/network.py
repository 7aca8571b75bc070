"""`StackNetwork`: what the stack's services share to reach each other (and, on docker, run from)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.runtime import Placement, Runtime
from providers.docker_resources import DockerImage, DockerImageArgs, DockerNamedArgs, DockerNetwork


@dataclass(frozen=True)
class StackNetworkArgs:
    placement: Placement
    """Runtime, state dir and toolchain of the stack."""


class StackNetwork(pulumi.ComponentResource):
    """docker: a bridge network the containers join by service alias, and the runtime image they run;
    process: loopback only."""

    name: pulumi.Output[str]
    image: pulumi.Output[str]
    """The runtime image's reference, once it exists (docker); empty on process."""

    def __init__(self, name: str, args: StackNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:StackNetwork", name, None, opts)
        self._shared: list[pulumi.Resource] = []
        self.docker_network_name = args.placement.docker_network
        placement = args.placement
        if placement.runtime is Runtime.DOCKER:
            child = pulumi.ResourceOptions(parent=self)
            network = DockerNetwork(
                f"{name}-bridge", DockerNamedArgs(name=placement.docker_network, stack=placement.docker_network, engine=placement.docker_engine), opts=child
            )
            image = DockerImage(
                f"{name}-image",
                DockerImageArgs(reference=placement.docker_image, platform=placement.image_platform, engine=placement.docker_engine),
                opts=child,
            )
            self._shared = [network, image]
            self.name = network.name  # type: ignore[attr-defined]
            self.image = image.reference  # type: ignore[attr-defined]
        else:
            self.name = pulumi.Output.from_input("loopback")
            self.image = pulumi.Output.from_input("")
        self.register_outputs({"name": self.name, "image": self.image})

    def dependency(self) -> list[pulumi.Resource]:
        """What a service must wait for before it can start: on docker, the network and the image."""
        return list(self._shared)
