"""atomic_write (result.json, report.html, recording.json): the old file or the new one, never half."""

import os
from pathlib import Path
from unittest import mock

import pytest

from trainopt.agent.record import atomic_write

NEW = "new " * 10_000


@pytest.mark.parametrize("fault", ["fsync", "rename"])
def test_a_failing_write_leaves_the_previous_file_and_no_temporary(tmp_path, fault):
    target = tmp_path / "result.json"
    target.write_text("old, complete")
    error = OSError(28, "No space left on device")
    patch = mock.patch.object(os, "fsync", side_effect=error) if fault == "fsync" else \
        mock.patch.object(Path, "replace", side_effect=error)
    with patch, pytest.raises(OSError, match="No space left"):
        atomic_write(target, NEW)
    # the reader still finds the complete old file, and nothing else was left in the folder
    assert target.read_text() == "old, complete"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_write_that_succeeds_replaces_the_file_whole(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    atomic_write(target, NEW)
    assert target.read_text() == NEW and oct(target.stat().st_mode & 0o777) == "0o644"
