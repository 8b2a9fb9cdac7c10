"""churnwatch: customer events in from Kafka, churn alerts and Prometheus metrics out.

The rooms: ``churnwatch.schemas`` (contracts) and ``churnwatch.rules`` (the
pure core) know nothing of Kafka; ``runner`` is the one way an event or a
sweep tick goes through the core, live or offline; ``worker`` is the Faust
shell around it, ``http`` what it serves, ``kafka`` the plumbing both the
worker and the tools use, ``offline`` replay, backtest, simulator and
scorecard, ``dev`` the demo and the brokers for trying it out, ``testing`` the
kit for testing a rules file.
"""
