"""Dynamic providers: local services, databases seeds, and (later) REST objects as Pulumi resources."""
