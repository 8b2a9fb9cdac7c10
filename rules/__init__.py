"""The functional core: customer state, rules and alert episodes as pure functions."""

from churnwatch.rules.config import RulesConfig, load_rules
from churnwatch.rules.engine import Transition, apply_event, evaluate
from churnwatch.rules.fold import Outcome
from churnwatch.rules.state import CustomerState

__all__ = ["CustomerState", "Outcome", "RulesConfig", "Transition", "apply_event", "evaluate", "load_rules"]
