"""What the tests and `make bench` both need to drive the stack, without pytest.

The Pulumi CLI and throwaway stacks (`testkit.stack`), names a caller owns (`testkit.names`), Kafka
topics and Debezium event readers (`testkit.kafka`), connector clean-up (`testkit.connectors`),
Iceberg namespaces and events built in code (`testkit.iceberg`), Delta databases and delta-rs's
store options (`testkit.delta`), and the stack's sink jobs seen through their /health
(`testkit.sinks`). Failures are plain exceptions (`AssertionError`, `testkit.stack.StackNotUp`);
`tests/support` turns them into pytest failures where a test needs a message naming the fix.
"""
