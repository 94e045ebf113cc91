"""Fixtures for the modeling tests: a narrow SlowFast and a small batch."""
import pytest

from .small_model import build_small, make_inputs


@pytest.fixture
def small_model():
    return build_small()


@pytest.fixture
def small_inputs():
    return make_inputs()
