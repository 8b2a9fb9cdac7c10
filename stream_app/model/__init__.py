"""The online churn model and what it measures itself by: ROC AUC, calibration, the weekly ranking."""

from churnwatch.model.online import ChurnModel

__all__ = ["ChurnModel"]
