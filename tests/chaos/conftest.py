"""Sizes of the chaos runs: CI size unless EVENTSOURCE_CHAOS=full (set by
``python -m tests.chaos.run_full``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class ChaosSize:
    name: str
    events: int
    faults: int  # at least this many faults are injected per mode
    stalls: int  # of which stalls (each costs read_timeout)
    drips: int  # and slow-drip connections
    watchdog: float  # seconds: a run still going after this is hung


CI = ChaosSize("ci", events=3_000, faults=200, stalls=3, drips=6, watchdog=60.0)
FULL = ChaosSize("full", events=100_000, faults=5_000, stalls=40, drips=60, watchdog=1800.0)


def full_size() -> bool:
    return os.environ.get("EVENTSOURCE_CHAOS", "").lower() == "full"


@pytest.fixture
def chaos_size() -> ChaosSize:
    return FULL if full_size() else CI
