"""Labels through a topic: the wire form, and a model that learns each label once, by week, knowing where it stopped."""

from __future__ import annotations

import random
from pathlib import Path

from churnwatch.model import ChurnModel
from churnwatch.rules.clock_math import DAY
from churnwatch.rules.config import ModelConfig
from churnwatch.rules.engine import Assessment
from churnwatch.rules.labels import Labelled
from churnwatch.rules.state import Observation
from churnwatch.worker.labels import (
    PartitionClock,
    decode_record,
    encode_assessment,
    encode_clock,
    encode_label,
    learn_record,
    read_record,
)

PARTITIONS = 2
HORIZON = ModelConfig().horizon_days * DAY
WEEK = ModelConfig().snapshot_every_days * DAY


def label(customer: str, taken_at: int, churned: int) -> Labelled:
    observation = Observation(counts={"login": (1, 4, 9)}, active_days_7=1, active_days_28=4, age_days=40.0,
                              tenure_days=40.0, days_since_login=3.5, mrr=99.0)
    return Labelled(customer, taken_at, observation, "v2-x", 0.25, churned, -1.1)


def test_a_label_reads_back_as_it_was_written() -> None:
    original = label("c1", 1_700_000_000, 1)
    assert decode_record(encode_label(original)) == original
    unscored = Labelled("c2", 5, None, "v1", None, 0)
    assert decode_record(encode_label(unscored)) == unscored
    assessed = Assessment(1_700_000_000, 12.5, "c3")
    assert decode_record(encode_assessment(assessed)) == assessed
    assert decode_record(encode_clock(PartitionClock(3, 1_700_000_000))) == PartitionClock(3, 1_700_000_000)


def clocks(at: int) -> list[bytes]:
    return [encode_clock(PartitionClock(p, at)) for p in range(PARTITIONS)]


def feed(model: ChurnModel, records: list[bytes], start: int = 0) -> list[bool]:
    return [learn_record(model, offset, read_record(offset, value), PARTITIONS)
            for offset, value in enumerate(records, start)]


def test_a_repeat_is_learned_once_and_the_model_knows_where_it_stopped(tmp_path: Path) -> None:
    model = ChurnModel(ModelConfig())
    records = [encode_label(label(f"c{n % 7}", 1_000 * n, n % 3 == 0)) for n in range(40)]
    assert all(feed(model, records))
    # Published twice: a crashed worker's messages read again.
    assert feed(model, [records[5], b"not a label"], 40) == [False, False]
    assert (model.labels.total(), model.waiting) == (0, 40)  # taken, not learned: their week is not done
    # Saved and loaded with what waits: it goes on from offset 42 and still knows the repeats.
    path = tmp_path / "model.pkl"
    model.save(path)
    again = ChurnModel.load(path, ModelConfig())
    assert again.labels_read == 42 and feed(again, [records[0]], 42) == [False]
    assert feed(again, clocks(HORIZON + 40_000 + WEEK), 43) == [False, True]  # the second partition completes it
    assert (again.labels.total(), again.waiting, again.skipped["unreadable label"]) == (40, 0, 1)


def test_a_week_is_learned_when_every_partition_is_past_it_and_never_goes_back() -> None:
    model = ChurnModel(ModelConfig())
    week_10 = 10 * WEEK
    feed(model, [encode_label(label("a", week_10 - HORIZON, 1)),
                 encode_label(label("b", week_10 + 3600 - HORIZON, 0))])
    feed(model, [encode_clock(PartitionClock(0, week_10 + 2 * WEEK))])
    assert model.learned_until is None and not model.covers(week_10)  # partition 1 has said nothing yet
    feed(model, [encode_clock(PartitionClock(1, week_10 + 7200))])
    assert model.learned_until == week_10
    assert model.covers(week_10 + 6 * DAY) and not model.covers(week_10 + WEEK)  # one version for the week
    assert model.labels.total() == 0  # both were due in week 10 itself: they belong to week 11's version
    feed(model, [encode_clock(PartitionClock(1, week_10 + 100))])  # a new owner starting behind: no step back
    assert model.learned_until == week_10
    feed(model, [encode_clock(PartitionClock(1, week_10 + WEEK - 1))])  # not a new week yet
    assert model.learned_until == week_10
    feed(model, [encode_clock(PartitionClock(1, week_10 + WEEK + 5))])
    assert (model.learned_until, model.labels.total()) == (week_10 + WEEK, 2)


def test_the_same_labels_in_any_order_make_the_same_model_by_day() -> None:
    """Two workers publish their labels interleaved as it happens: the model of a week must not depend on it."""
    labels = [encode_label(label(f"c{n}", DAY * (n % 9) + 60 * n, n % 4 == 0)) for n in range(60)]
    assessments = [encode_assessment(Assessment(HORIZON + DAY * (n % 9) + n, float(n), f"c{n}")) for n in range(60)]
    one, other = ChurnModel(ModelConfig()), ChurnModel(ModelConfig())
    shuffled = labels + assessments
    random.Random(7).shuffle(shuffled)
    feed(one, labels + assessments + clocks(HORIZON + 3 * WEEK))
    feed(other, shuffled + clocks(HORIZON + 3 * WEEK))
    assert one.labels.total() == 60
    assert one.pipeline["LogisticRegression"].weights == other.pipeline["LogisticRegression"].weights
    assert one.summary() == other.summary() and one.rank(30.0, 0) == other.rank(30.0, 0)


def test_verdicts_and_churns_reach_the_scoreboard_once_and_labels_only_the_model() -> None:
    from churnwatch.rules.outcomes import Churn, Judged, Verdict
    from churnwatch.schemas.alert import RuleName
    from churnwatch.scoreboard import Scoreboard
    from churnwatch.worker.labels import count_record, encode_churn, encode_judged

    hit = Judged("c1", RuleName.PAYMENT_FAILURE, "alert-1", 100, Verdict.HIT, 900, 8.0)
    churn = Churn("c1", 800, ((RuleName.PAYMENT_FAILURE, 8.0),))
    assert decode_record(encode_judged(hit)) == hit and decode_record(encode_churn(churn)) == churn
    records = [encode_label(label("c1", 5, 1)), encode_judged(hit), encode_churn(churn), encode_judged(hit),
               encode_churn(churn)]
    board, model = Scoreboard(), ChurnModel(ModelConfig())
    counted = [count_record(board, offset, read_record(offset, value)) for offset, value in enumerate(records)]
    learned = feed(model, records)
    assert counted == [False, True, True, False, False] and learned == [True, False, False, False, False]
    report = board.report()
    assert (report["churners"], report["rules"]["payment_failure"]["hits"], board.labels_read) == (1, 1, 5)
    assert Scoreboard.from_json(board.to_json()).seen.ids() == board.seen.ids()
