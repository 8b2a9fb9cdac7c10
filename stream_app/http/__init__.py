"""What the worker serves over HTTP: Prometheus metrics, health, customer lookup, size limits."""
