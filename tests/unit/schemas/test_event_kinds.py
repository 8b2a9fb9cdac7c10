"""The table of event types (``EVENT_KINDS``) is the one place a type is declared: everything else follows it."""

from __future__ import annotations

import typing

from churnwatch.rules.engine import FED_BY, RULES
from churnwatch.rules.fold import FOLDS
from churnwatch.schemas.events import EVENT_KINDS, EVENT_MODELS, ErasureRequest, Event
from churnwatch.settings import Settings


def test_every_kind_has_its_topic_setting_with_its_default_topic() -> None:
    defaults = Settings()
    for kind in EVENT_KINDS:
        assert kind.setting in Settings.model_fields, kind
        assert defaults.topic_for(kind.type) == kind.topic
    assert defaults.input_topics == tuple(kind.topic for kind in EVENT_KINDS)
    renamed = Settings(topic_payments="billing-failures")
    assert renamed.topic_for("payment") == "billing-failures" and "billing-failures" in renamed.input_topics


def test_the_event_union_the_fold_and_the_rules_know_exactly_the_kinds() -> None:
    models = {kind.model for kind in EVENT_KINDS}
    union = typing.get_args(typing.get_args(Event)[0])
    assert set(union) == models == set(EVENT_MODELS.values())
    assert set(FOLDS) == models - {ErasureRequest}  # an erasure replaces the facts: rules.engine.erase
    assert set(FED_BY) == models
    for rule in RULES:
        assert rule.fed_by and rule.fed_by <= models, rule.name
    assert {kind.model.model_fields["type"].default for kind in EVENT_KINDS} == set(EVENT_MODELS)
