"""For trying churnwatch out and testing it: the demo, the embedded and Apache Kafka brokers, child processes."""
