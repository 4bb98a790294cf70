"""A plain install (runtime dependencies only, no test extra) replays a recorded run.

Builds a clean virtual environment, installs torch==2.13.0 (the build on this machine's disk)
and trainopt from a copy of the source (``pip install <copy>``, not editable, no extras), then
runs ``trainopt optimize --replay tests/cassettes/digits-mlp`` with every proxy pointed at a
closed port, so a replay that reached for the network would fail. It catches a dependency that
only the test extra installs (vcrpy was one).

It installs packages (from pip's cache or the registry), so it takes minutes: it runs only when
TRAINOPT_PLAIN_INSTALL=1 (measured time and the command in docs/testing.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASSETTE = ROOT / "tests" / "cassettes" / "digits-mlp"
SOURCE = ["pyproject.toml", "README.md", "trainopt", "agent", "tools", "ars", "prompts"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(os.environ.get("TRAINOPT_PLAIN_INSTALL") != "1",
                       reason="builds a venv and installs packages (minutes): set TRAINOPT_PLAIN_INSTALL=1"),
]


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_a_plain_install_replays_the_recorded_run(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCE:  # a copy, so the build leaves nothing in the working tree
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "-q", "torch==2.13.0"])
    _run([python, "-m", "pip", "install", "-q", source])
    # the runtime install has no test extra: pytest is not there
    assert subprocess.run([python, "-c", "import pytest"], capture_output=True).returncode != 0

    closed = "http://127.0.0.1:9"  # nothing listens on the discard port: any request fails fast
    env = {**os.environ, "HTTP_PROXY": closed, "HTTPS_PROXY": closed, "ALL_PROXY": closed, "NO_PROXY": "",
           "http_proxy": closed, "https_proxy": closed, "TRAINOPT_LM": ""}
    done = _run([venv / "bin" / "trainopt", "optimize", "--replay", CASSETTE, "--out", tmp_path / "out", "--json"],
                env=env, cwd=tmp_path)
    response = json.loads(done.stdout)
    recorded = json.loads((CASSETTE / "result.json").read_text())
    # the replay recommends what the recorded run recommended, from the recorded evidence
    assert response["replayed"] is True
    assert response["recommended"] == recorded["recommended"]
