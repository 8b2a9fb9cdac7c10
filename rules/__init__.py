"""The functional core: customer state, rules and alert episodes as pure functions."""

from rules.config import RulesConfig, load_rules
from rules.engine import Transition, apply_event, evaluate
from rules.fold import Outcome
from rules.state import CustomerState

__all__ = ["CustomerState", "Outcome", "RulesConfig", "Transition", "apply_event", "evaluate", "load_rules"]
