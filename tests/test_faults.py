"""The fault matrix (tests/fault_scenarios.py), each scenario once (scripts/faults runs them N times).
Every scenario ends with nothing leaked and nothing removed early."""

import pytest

from fault_scenarios import SCENARIOS


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_scenario(runx, name):
    SCENARIOS[name](runx)
