"""The online churn model: River's standard scaler + logistic regression, gated and calibrated.

It learns one labelled snapshot at a time, in label order. A label comes
with the probability (and the raw score) the model gave when the snapshot
was taken, a horizon earlier: those update the online ROC AUC and log loss
(the model as it was used), the gate's window and the calibration's, and
then the model trains on the label. Nothing is judged by the current model
on labels of customers it has already learned: a customer's weekly
snapshots are near copies, and a model that learned one "recognises" the
next (on the shared crm6 base, whose churn is random, a first version of the
gate that judged that way read ROC AUC 0.80 and let 137 alerts through).

Chosen by measurement (docs/model.md): plain SGD at 0.003, no
weighting of the rare positives (weighting them, as earlier versions did,
cost ROC AUC on every base tried and made the scores over-confident).

Learning is versioned by event-time week, so the model is a function of the
labels alone, not of when a worker happened to read them: labels (and the
weekly assessments the alert budget ranks against) are taken in as they
come, but learned only when the shell says every one due before a day has
arrived (``advance``), then in one fixed order (due time, customer,
snapshot). A snapshot taken on day D is scored by the model that has
learned exactly what was due before D (``covers``); the live workers and a
replay of the same input therefore score it alike, and send the same
``model_risk`` alerts (docs/model.md, "One model, the same alerts").

The features come from the snapshot's raw observation and the model's own
vocabulary (``churnwatch.rules.features.FeatureSet``), chosen from the usage names of
what it learned: at the 1st, 2nd, 4th, ... label, then every
``vocabulary_every_labels``.

The gate: the model may alert (``ready``) once it has learned from
``min_labels`` labels and a lower bound (at ``gate_confidence``) of the
online ROC AUC of its last ``gate_window`` scored labels, with at least
``gate_min_positives`` churners among them, is at least ``auc_floor``; it
goes quiet again when that bound falls below. Its scores are
kept from ``min_labels`` on, so the gate opens a horizon after that at the
earliest.

Cost: a score is the feature step, a scaler transform and a dot product over
a few dozen features, tens of microseconds; the model is tens of kilobytes
pickled. It is kept out of the table and checkpointed to a file.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import tempfile
from collections import Counter, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from river import compose, linear_model, optim, preprocessing

from churnwatch.rules.clock_math import DAY, to_datetime
from churnwatch.rules.config import ModelConfig
from churnwatch.rules.engine import Assessment
from churnwatch.rules.features import FeatureSet, inputs
from churnwatch.rules.labels import Labelled, version_start
from churnwatch.rules.model_risk import Rank, Score, stake
from churnwatch.rules.state import Driver, Observation
from churnwatch.model.calibration import Platt
from churnwatch.model.learned import LearnedRecently, label_id
from churnwatch.model.ranking import WeeklyRanking, deepest_share
from churnwatch.model.roc import StreamingAUC, auc_lower_bound, logit

log = logging.getLogger(__name__)


class ModelFileError(ValueError):
    """A model file asked for by name (a start) that cannot be used."""


TOP_DRIVERS = 3
CHECKPOINT_VERSION = 3
REFRESH_EVERY = 100  # labels between two looks at the gate and the calibration
CALIBRATION_PULL = 0.5  # the calibration's pull towards no change, in shares of the gate window
MAX_TRACKED_NAMES = 1024  # usage names whose frequency is kept to choose the vocabulary from


class ChurnModel:
    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.pipeline = compose.Pipeline(
            preprocessing.StandardScaler(),
            linear_model.LogisticRegression(optimizer=optim.SGD(config.learning_rate), l2=config.l2),
        )
        self.frequency: Counter[str] = Counter()
        self.feature_set = FeatureSet.choose({}, config.features)
        self.auc = StreamingAUC()  # the probabilities given at snapshot time: the headline figure
        self.log_loss_total = 0.0
        self.recent = StreamingAUC(window=config.gate_window)  # the same, recent labels only: the gate
        self.recent_pairs: deque[tuple[float, int]] = deque(maxlen=config.gate_window)
        self.calibration = Platt(prior=config.gate_window * CALIBRATION_PULL)
        self.gate_open = False
        self.labels: Counter[int] = Counter()
        self.scored: Counter[int] = Counter()  # labels that came with a probability (in AUC)
        self.skipped: Counter[str] = Counter()  # labels the model could not learn from, by reason
        self.ranking = WeeklyRanking(config.snapshot_every_days)
        # The recent labels' stakes as scored at snapshot time, and the top share their precision supports.
        self.stakes: deque[tuple[float, int]] = deque(maxlen=config.gate_window)
        self.budget: float | None = None
        # Where a worker's model is in the labels topic (the next offset to learn), and what it took
        # lately: saved with it, so a restart reads on from there (churnwatch.worker.labels).
        self.labels_read = 0
        self.learned_recently = LearnedRecently()
        # The version: everything due before this time (a week's start) is learned, nothing later.
        self.learned_until: int | None = None
        # The start of the first version that was ready (warm, gate open): from then model_risk could speak.
        self.first_ready_at: int | None = None
        self._waiting: list[tuple[int, str, int, Labelled | Assessment]] = []  # taken, not yet due
        self.late = 0  # taken after its week's version was made: learned at once, out of order
        # How far each input partition's clock has gone, as its owner announced (the live shell's).
        self.clocks: dict[int, int] = {}

    # --- what the core may ask (rules.model_risk.ModelView) -------------------

    @property
    def warm(self) -> bool:
        return self.labels.total() >= self.config.min_labels

    @property
    def ready(self) -> bool:
        return self.warm and self.gate_open

    def score(self, observation: Observation, explain: bool = False) -> Score:
        values = inputs(observation, self.feature_set)
        raw = self._raw(values)
        drivers = self.drivers(values) if explain else ()
        return Score(self.calibration(raw), self.warm, self.ready, drivers, self.feature_set.id, round(raw, 6))

    def rank(self, stake: float, now: int) -> Rank | None:
        """Among the assessments of the week before the version (the same for every worker), with the depth
        the version's precision supports."""
        found = self.ranking.rank(stake, self.learned_until if self.learned_until is not None else now)
        return None if found is None else found._replace(budget=self.budget)

    def covers(self, at: int) -> bool:
        """Whether this is the version that scores a snapshot taken at ``at`` (or a later one)."""
        return self.learned_until is not None and self.learned_until >= version_start(at, self.config)

    # --- what the shell does ------------------------------------------------------

    def absorb(self, assessed: Iterable[Assessment], labelled: Iterable[Labelled]) -> int:
        """Take in what a transition carries for the model, to learn when its week's version is made.

        Called after the transition's alerts are sent. Returns how many were
        new (a label or an assessment delivered twice is taken once).
        """
        taken = 0
        horizon = self.config.horizon_days * DAY
        for assessment in assessed:
            taken += self._take(assessment.at, assessment.customer_id, 0, assessment,
                                f"assessed:{assessment.customer_id}@{assessment.at}")
        for example in labelled:
            taken += self._take(example.taken_at + horizon, example.customer_id, example.taken_at, example,
                                label_id(example))
        return taken

    def _take(self, due: int, customer_id: str, taken_at: int, item: Labelled | Assessment, key: str) -> bool:
        if not self.learned_recently.add(key):
            return False
        if self.learned_until is not None and due < self.learned_until:
            self.late += 1  # its version is made: learned now, so it is not lost
            self._apply(item)
        else:
            self._waiting.append((due, customer_id, taken_at, item))
        return True

    def advance(self, until: int) -> int:
        """Make the version of the period holding ``until``: learn what is due before it, in one order; returns
        failures.

        The shell calls this once it knows every label and assessment due
        before that period has been taken (the replay: its clock; a worker: the
        clocks every partition's owner announced on the labels topic).
        """
        boundary = version_start(until, self.config)
        if self.learned_until is not None and boundary <= self.learned_until:
            return 0
        self.learned_until = boundary
        due = sorted((w for w in self._waiting if w[0] < boundary), key=lambda w: w[:3])
        failed = 0
        if due:
            self._waiting = [w for w in self._waiting if w[0] >= boundary]
            failed = sum(not self._apply(item) for *_, item in due)
        if self.first_ready_at is None and self.ready:
            self.first_ready_at = boundary
        return failed

    def _apply(self, item: Labelled | Assessment) -> bool:
        """One label learned, or one assessment ranked. A label that makes the model raise (a bug, a corrupt
        snapshot) is logged and counted, never passed on."""
        if isinstance(item, Assessment):
            self.ranking.record(item.at, item.stake)
            return True
        try:
            self.learn(item)
        except Exception:  # noqa: BLE001 - learning must not stop the model
            self.skipped["learning error"] += 1
            log.exception("learning from the snapshot of %s at %d failed", item.customer_id, item.taken_at)
            return False
        return True

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _raw(self, values: dict[str, float]) -> float:
        return float(self.pipeline.predict_proba_one(values).get(True, 0.5))

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
            Driver(name=name, value=round(values[name], 4), contribution=round(push, 4))
            for push, name in pushes[:TOP_DRIVERS] if push > 0
        )

    def learn(self, example: Labelled) -> None:
        """Test, then train. A snapshot the model cannot read is counted and skipped, never raised."""
        if example.observation is None:
            self.skipped[f"feature set {example.feature_set}"] += 1
            return
        label = example.label
        if example.probability is not None:
            self.auc.add(example.probability, label)
            self.recent.add(example.probability, label)
            p = min(max(example.probability, 1e-12), 1 - 1e-12)
            self.log_loss_total += -math.log(p if label else 1 - p)
            self.scored[label] += 1
            self.stakes.append((stake(example.probability, example.observation.mrr, self.config), label))
        if example.raw is not None:
            self.recent_pairs.append((logit(example.raw), label))
        values = inputs(example.observation, self.feature_set)
        self.labels[label] += 1
        self.pipeline.learn_one(values, bool(label))
        for name, (_, month, _) in example.observation.counts.items():
            self.frequency[name] += month
        total = self.labels.total()
        if total % REFRESH_EVERY == 0:
            self._refresh()
        every = self.config.features.vocabulary_every_labels
        if total % every == 0 or (total < every and total & (total - 1) == 0):
            self._choose_vocabulary()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A checkpoint saved before the budget followed precision (its recent stakes start empty), or before
        the first ready version was kept (unknown)."""
        self.__dict__.update(state)
        self.__dict__.setdefault("stakes", deque(maxlen=self.config.gate_window))
        self.__dict__.setdefault("budget", None)
        self.__dict__.setdefault("first_ready_at", None)

    def _refresh(self) -> None:
        """Judge the gate, refit the calibration and size the budget on the recent labels' scores."""
        self.gate_open = self.recent.positives >= self.config.gate_min_positives and (
            (bound := self.recent_auc_bound()) is not None and bound >= self.config.auc_floor)
        self.calibration.fit(list(self.recent_pairs))
        config = self.config
        self.budget = (deepest_share(self.stakes, config.lift_floor, config.budget_share, config.lift_min_hits,
                                     config.gate_confidence) if config.lift_floor > 0 else None)

    def recent_auc_bound(self) -> float | None:
        """The recent ROC AUC's lower bound at ``gate_confidence`` (None while a class is missing)."""
        auc = self.recent.get()
        if auc is None:
            return None
        return auc_lower_bound(auc, self.recent.positives, self.recent.negatives, self.config.gate_confidence)

    def _choose_vocabulary(self) -> None:
        if len(self.frequency) > MAX_TRACKED_NAMES:
            self.frequency = Counter(dict(self.frequency.most_common(MAX_TRACKED_NAMES // 2)))
        chosen = FeatureSet.choose(self.frequency, self.config.features)
        if chosen != self.feature_set:
            log.info("model vocabulary: %d usage names (%s), feature set %s", len(chosen.names),
                     ", ".join(chosen.names[:8]) + (", ..." if len(chosen.names) > 8 else ""), chosen.id)
            self.feature_set = chosen

    def summary(self) -> dict[str, Any]:
        scored = self.scored.total()
        base = self.scored[1] / scored if scored else None
        constant = (-(base * math.log(base) + (1 - base) * math.log(1 - base))
                    if base is not None and 0 < base < 1 else None)
        return {
            "labels": self.labels.total(),
            "positive_labels": self.labels[1],
            "negative_labels": self.labels[0],
            "scored_labels": scored,
            # AUC needs both classes; until then it is undefined, not 0.
            "roc_auc": _rounded(self.auc.get()),
            "log_loss": _rounded(self.log_loss_total / scored) if scored else None,
            # What always answering the observed churn rate would score: a calibrated
            # model must do better.
            "log_loss_constant": _rounded(constant),
            "recent_roc_auc": _rounded(self.recent.get()),
            # What the gate judges: the recent AUC's lower bound at ``gate_confidence``.
            "recent_roc_auc_bound": _rounded(self.recent_auc_bound()),
            "gate_open": self.gate_open,
            # The top share of the week's assessments the recent precision supports (model.lift_floor; None: off).
            "budget": _rounded(self.budget),
            "ready": self.ready,
            "feature_set": self.feature_set.id,
            "usage_names": len(self.feature_set.names),
            "skipped_labels": dict(self.skipped),
            "learned_until": None if self.learned_until is None else to_datetime(self.learned_until).isoformat(),
            "first_ready_at": None if self.first_ready_at is None else to_datetime(self.first_ready_at).isoformat(),
            "waiting": len(self._waiting),
            "late": self.late,
        }

    # --- persistence -------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write atomically: a crash mid-write leaves the previous checkpoint."""
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"version": CHECKPOINT_VERSION, "model": self}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            pickle.dump(payload, out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, config: ModelConfig, start: Path | None = None) -> ChurnModel:
        """The checkpoint at ``path`` if there is one of this version, else the model saved at ``start`` (a
        backtest's: ``start_from``), else a new model.

        A checkpoint of another version (a model or feature change) is moved
        aside, not fatal: the worker starts learning afresh rather than stop.
        The worker's own checkpoint comes before ``start``: after a restart
        it holds what the worker learned live since it started from it.
        """
        if not path.exists():
            return cls(config) if start is None else cls.start_from(start, config)
        payload = _read(path)
        if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
            aside = path.with_name(f"{path.name}.v{payload.get('version') if isinstance(payload, dict) else '?'}")
            os.replace(path, aside)
            log.warning("model checkpoint %s is of another version; moved to %s, learning afresh", path, aside)
            return cls(config) if start is None else cls.start_from(start, config)
        model: ChurnModel = payload["model"]
        model.config = config
        return model

    @classmethod
    def start_from(cls, path: Path, config: ModelConfig) -> ChurnModel:
        """A model saved by ``churnwatch backtest --save-model`` (or a worker's checkpoint) to start from.

        Why: a deployment that starts with a new model is blind for months
        (the gate opens a horizon after the model has warmed up, at the
        earliest), while the warehouse holds years of the same events. The
        model carries its gate's window of out-of-time scores, so it speaks at
        once where the history earned it, and it keeps learning. Unlike a
        checkpoint of another version, a start that cannot be read stops the
        caller: it was asked for by name.
        """
        try:
            payload = _read(path)
        except OSError as exc:
            raise ModelFileError(f"cannot read the starting model {path}: {exc.strerror}") from exc
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, ValueError) as exc:
            raise ModelFileError(f"{path} is not a churnwatch model file ({type(exc).__name__})") from exc
        if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
            version = payload.get("version") if isinstance(payload, dict) else "?"
            raise ModelFileError(f"the starting model {path} is of version {version}, this churnwatch reads "
                             f"{CHECKPOINT_VERSION}: save it again with this version's backtest")
        model: ChurnModel = payload["model"]
        model.config = config
        model._refresh()  # the gate as this config judges it (the floor, the confidence)
        log.info("model started from %s: %d labels, learned until %s, gate %s", path, model.labels.total(),
                 model.summary()["learned_until"], "open" if model.gate_open else "shut")
        return model


def _read(path: Path) -> Any:
    with path.open("rb") as source:
        return pickle.load(source)  # our own file, written by save()


def _rounded(value: float | None) -> float | None:
    return round(float(value), 4) if value is not None and math.isfinite(value) else None
