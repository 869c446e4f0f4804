import pathlib
import sys
from typing import Iterator

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"

pytest_plugins = ["tests.lab.pytest_plugin"]


@pytest.fixture
def fixtures_dir() -> pathlib.Path:
    return FIXTURES


@pytest.fixture(autouse=True)
def _no_default_program_after_the_test() -> Iterator[None]:
    """A test that sets drgn's default program (as drgn's CLI does) leaves
    none behind for the next one in the same process."""
    yield
    drgn = sys.modules.get("drgn")
    if drgn is not None:
        drgn.set_default_prog(None)
