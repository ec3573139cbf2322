"""Schedules as pure functions of progress (nanoGPT's get_lr): exact resume needs only the step."""
from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "exponential", "cosine")


def decay(kind: str, start: float, t: float, horizon: float, end: float = 0.0) -> float:
    """The value at time t (any unit, e.g. epochs) of a decay from `start` to `end` over `horizon`.

    linear and cosine reach `end` at t = horizon and stay there; exponential is start * exp(-5 t / horizon)
    (1% of start left at the horizon, decaying on). constant is always `start`.
    """
    if kind == "constant" or horizon <= 0:
        return start
    frac = min(max(t / horizon, 0.0), 1.0)
    if kind == "linear":
        return start + (end - start) * frac
    if kind == "cosine":
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * frac))
    if kind == "exponential":
        return end + (start - end) * math.exp(-5.0 * max(t, 0.0) / horizon)
    raise ValueError(f"unknown schedule {kind!r}; known: {', '.join(SCHEDULES)}")
