"""The online churn model: River's standard scaler + logistic regression.

It learns one labelled snapshot at a time (test-then-train: each label first
updates ROC AUC and log loss with the probability the model gave when the
snapshot was taken, then trains). Positives are rare, so each is weighted by
the running ratio of negatives to positives (capped at 5), which keeps the
model from settling on "nobody churns"; scores are then corrected for that
weight (odds divided by it), so that a probability stays a probability and
thresholds keep their meaning. The learning rate is small (0.001): each
label moves the model a little, so one customer's score does not jump with
every label learned.

Cost: a score is a scaler transform and a dot product over ~35 features,
tens of microseconds; the model is a few kilobytes pickled. It is kept out of
the table and checkpointed to a file.
"""

from __future__ import annotations

import math
import os
import pickle
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from river import compose, linear_model, metrics, optim, preprocessing

from rules.config import ModelConfig
from rules.labels import Labelled
from rules.model_risk import Score
from rules.features import from_vector
from rules.state import Driver

MAX_POSITIVE_WEIGHT = 5.0
TOP_DRIVERS = 3
CHECKPOINT_VERSION = 1


class ChurnModel:
    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.pipeline = compose.Pipeline(
            preprocessing.StandardScaler(),
            linear_model.LogisticRegression(optimizer=optim.SGD(config.learning_rate), l2=config.l2),
        )
        self.auc = metrics.ROCAUC(n_thresholds=200)
        self.log_loss = metrics.LogLoss()
        self.labels: Counter[int] = Counter()
        self.scored: Counter[int] = Counter()  # labels that came with a probability (in AUC)

    @property
    def ready(self) -> bool:
        return self.labels.total() >= self.config.min_labels

    @property
    def positive_weight(self) -> float:
        return min(MAX_POSITIVE_WEIGHT, max(1.0, self.labels[0] / max(self.labels[1], 1)))

    def score(self, values: dict[str, float], explain: bool = False) -> Score:
        weighted = float(self.pipeline.predict_proba_one(values).get(True, 0.5))
        # Undo the positive weight's shift of the odds: odds / w.
        probability = weighted / (weighted + (1.0 - weighted) * self.positive_weight)
        return Score(probability, self.ready, self.drivers(values) if explain else ())

    def drivers(self, values: dict[str, float]) -> tuple[Driver, ...]:
        """The features pushing the score up most: weight x scaled value, positives only."""
        scaler: preprocessing.StandardScaler = self.pipeline["StandardScaler"]
        weights = self.pipeline["LogisticRegression"].weights
        scaled = scaler.transform_one(values)
        pushes = sorted(
            ((weights.get(name, 0.0) * scaled.get(name, 0.0), name) for name in values),
            reverse=True,
        )
        return tuple(
            Driver(name=name, value=values[name], contribution=round(push, 4))
            for push, name in pushes[:TOP_DRIVERS] if push > 0
        )

    def learn(self, example: Labelled) -> None:
        label = bool(example.label)
        if example.probability is not None:
            self.auc.update(label, example.probability)
            self.log_loss.update(label, example.probability)
            self.scored[example.label] += 1
        weight = self.positive_weight if label else 1.0
        self.labels[example.label] += 1
        self.pipeline.learn_one(from_vector(example.values), label, w=weight)

    def summary(self) -> dict[str, Any]:
        return {
            "labels": self.labels.total(),
            "positive_labels": self.labels[1],
            "negative_labels": self.labels[0],
            "scored_labels": self.scored.total(),
            # AUC needs both classes; until then it is undefined, not 0.
            "roc_auc": _finite(self.auc.get()) if self.scored[0] and self.scored[1] else None,
            "log_loss": _finite(self.log_loss.get()) if self.scored else None,
            "ready": self.ready,
        }

    # --- persistence -------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write atomically: a crash mid-write leaves the previous checkpoint."""
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"version": CHECKPOINT_VERSION, "pipeline": self.pipeline, "auc": self.auc,
                   "log_loss": self.log_loss, "labels": self.labels, "scored": self.scored}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            pickle.dump(payload, out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, config: ModelConfig) -> ChurnModel:
        """The checkpoint at ``path`` if there is one, else a new model."""
        model = cls(config)
        if not path.exists():
            return model
        with path.open("rb") as source:
            payload = pickle.load(source)  # our own file, written by save()
        if payload.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"model checkpoint {path} has version {payload.get('version')}, "
                             f"expected {CHECKPOINT_VERSION}; move it away to start afresh")
        model.pipeline = payload["pipeline"]
        model.auc = payload["auc"]
        model.log_loss = payload["log_loss"]
        model.labels = payload["labels"]
        model.scored = payload["scored"]
        return model


def _finite(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) else None
