"""bench/ holds scripts, not a package: the tests import each one from its file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="session")
def bench_script():
    """``bench_script("faults")``: bench/faults.py, imported as a module, with bench/ on sys.path as
    ``python3 bench/faults.py`` has it (the scripts import their siblings, e.g. doc_block)."""

    def load(name: str):
        if str(BENCH) not in sys.path:
            sys.path.insert(0, str(BENCH))
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
