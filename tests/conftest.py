import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"

pytest_plugins = ["tests.lab.pytest_plugin"]


@pytest.fixture
def fixtures_dir() -> pathlib.Path:
    return FIXTURES
