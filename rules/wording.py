"""How alert texts count: "1 day", "2 days".

A support rep reads the reasons; "in 1 days" or "over 1 messages" reads as
a template filled in, not as somebody's words about a customer.
"""

from __future__ import annotations


def counted(amount: float, noun: str) -> str:
    """``amount`` (as a whole number) and ``noun``, plural unless it shows as 1."""
    shown = f"{amount:.0f}"
    return f"{shown} {noun}" if shown in ("1", "-1") else f"{shown} {noun}s"
