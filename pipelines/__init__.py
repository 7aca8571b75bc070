"""cdcstack's pipeline library: Debezium decoding, consistency checks, lag probe. No Pulumi here."""
