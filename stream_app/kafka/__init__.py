"""Kafka plumbing shared by the worker and the tools: topics, security, publishing and reading."""
