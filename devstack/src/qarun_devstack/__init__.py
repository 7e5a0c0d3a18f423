"""Real infrastructure for tests and the local demo: Kafka, Flink, PostgreSQL, Redis and a
Kubernetes control plane, installed by scripts/ and started here on loopback ports."""
