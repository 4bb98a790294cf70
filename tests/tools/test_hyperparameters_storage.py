"""The search's output names its storage without an absolute path or a password of this machine."""

from __future__ import annotations

import pytest

from trainopt.tools.hyperparameters import HyperparameterSuggester, portable_storage


@pytest.mark.parametrize(("storage", "expected"), [
    (None, "in-memory"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("sqlite:///runs/trials.db", "sqlite:///runs/trials.db"),  # already relative: kept
    ("sqlite:////elsewhere/trials.db", "sqlite:////elsewhere/trials.db"),  # not under the directory: kept
    ("postgresql+psycopg://me:secret@db:5432/trials", "postgresql+psycopg://me:***@db:5432/trials"),
])
def test_portable_storage(storage, expected):
    assert portable_storage(storage) == expected


def test_a_file_under_the_current_directory_is_named_relative_to_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hpo = HyperparameterSuggester(workload="digits-mlp", device="cpu")
    out = hpo(n_trials=1, max_steps=5, pruner="none", storage=f"sqlite:///{tmp_path / 'hpo.db'}")
    # The recorded URL is the relative one, and it opens the same file from here.
    assert out.storage == "sqlite:///hpo.db"
    assert hpo(n_trials=1, max_steps=5, pruner="none", storage=out.storage).trials_resumed == 1
