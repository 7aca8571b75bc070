"""One Pulumi ComponentResource per service, each with a process and a docker runtime."""
