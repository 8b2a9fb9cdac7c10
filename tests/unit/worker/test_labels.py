"""Labels through a topic: the wire form, and a model that learns each label once, knowing where it stopped."""

from __future__ import annotations

from pathlib import Path

from churnwatch.model import ChurnModel
from churnwatch.rules.config import ModelConfig
from churnwatch.rules.labels import Labelled
from churnwatch.rules.state import Observation
from churnwatch.worker.labels import decode_record, encode_label, learn_record, read_record


def label(customer: str, taken_at: int, churned: int) -> Labelled:
    observation = Observation(counts={"login": (1, 4, 9)}, active_days_7=1, active_days_28=4, age_days=40.0,
                              tenure_days=40.0, days_since_login=3.5, mrr=99.0)
    return Labelled(customer, taken_at, observation, "v2-x", 0.25, churned, -1.1)


def test_a_label_reads_back_as_it_was_written() -> None:
    original = label("c1", 1_700_000_000, 1)
    assert decode_record(encode_label(original)) == original
    unscored = Labelled("c2", 5, None, "v1", None, 0)
    assert decode_record(encode_label(unscored)) == unscored


def test_a_repeat_is_learned_once_and_the_model_knows_where_it_stopped(tmp_path: Path) -> None:
    model = ChurnModel(ModelConfig())
    records = [encode_label(label(f"c{n % 7}", 1_000 * n, n % 3 == 0)) for n in range(40)]
    for offset, value in enumerate(records):
        assert learn_record(model, offset, read_record(offset, value))
    # Published twice: a crashed worker's messages read again.
    assert not learn_record(model, 40, read_record(40, records[5]))
    assert not learn_record(model, 41, read_record(41, b"not a label"))
    assert (model.labels.total(), model.labels_read, model.skipped["unreadable label"]) == (40, 42, 1)
    # Saved and loaded: it goes on from offset 42 and still knows the repeats.
    path = tmp_path / "model.pkl"
    model.save(path)
    again = ChurnModel.load(path, ModelConfig())
    assert again.labels_read == 42 and not learn_record(again, 42, read_record(42, records[0]))


def test_models_fed_the_same_labels_in_the_same_order_are_the_same_model() -> None:
    records = [encode_label(label(f"c{n}", 1_000 * n, n % 4 == 0)) for n in range(60)]
    one, other = ChurnModel(ModelConfig()), ChurnModel(ModelConfig())
    for offset, value in enumerate(records):
        learn_record(one, offset, read_record(offset, value))
        learn_record(other, offset, read_record(offset, value))
    assert one.pipeline["LogisticRegression"].weights == other.pipeline["LogisticRegression"].weights
    assert one.summary() == other.summary()


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
    learned = [learn_record(model, offset, read_record(offset, value)) for offset, value in enumerate(records)]
    assert counted == [False, True, True, False, False] and learned == [True, False, False, False, False]
    report = board.report()
    assert (report["churners"], report["rules"]["payment_failure"]["hits"], board.labels_read) == (1, 1, 5)
    assert Scoreboard.from_json(board.to_json()).seen.ids() == board.seen.ids()
