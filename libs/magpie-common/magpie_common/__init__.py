"""Shared plumbing of the Magpie services. One place for each piece: config, Kafka, storage, metrics, logging."""
