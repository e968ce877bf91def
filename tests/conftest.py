import sys
from pathlib import Path

# tests/ holds helper modules (gradcheck.py) imported by the tests.
sys.path.insert(0, str(Path(__file__).parent))

import pytest


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path_factory, monkeypatch):
    """Each test runs in an empty folder of its own, so that the runs/ and runs/latest
    that training writes relative to the working directory never land in the repo."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
