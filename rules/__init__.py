"""The functional core: customer state, rules and alert episodes as pure functions."""

from rules.engine import Transition, apply_event
from rules.state import CustomerState

__all__ = ["CustomerState", "Transition", "apply_event"]
