"""A recording carries its format and trainopt version; a replay refuses another format in one line."""

from __future__ import annotations

import json

import pytest

from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent
from trainopt.agent.record import CASSETTE, META, RECORDING_FORMAT, TRIALS, Recording, trainopt_version
from trainopt.errors import HyperparameterError, RecordingFormatError


def _fake_recording(folder, **meta):
    """A recording folder as an older trainopt would have left it: empty cassette and store."""
    folder.mkdir()
    (folder / CASSETTE).write_text("interactions: []\nversion: 1\n")
    (folder / TRIALS).write_bytes(b"")
    request = OptimizationRequest(workload="digits-mlp").model_dump(mode="json", exclude={"workload"})
    (folder / META).write_text(json.dumps({"workload": "digits-mlp", "device": "cpu", "lm": "offline",
                                           "request": request, **meta}))
    return folder


@pytest.mark.parametrize(("meta", "found"), [
    ({}, "format none (trainopt unknown)"),  # made before recordings carried a format
    ({"format": 1, "trainopt": "0.0.9"}, "format 1 (trainopt 0.0.9)"),
    ({"format": RECORDING_FORMAT + 1, "trainopt": "9.0"}, f"format {RECORDING_FORMAT + 1} (trainopt 9.0)"),
])
def test_a_recording_of_another_format_is_refused_in_one_line(tmp_path, meta, found):
    folder = _fake_recording(tmp_path / "rec", **meta)
    agent = TrainingOptimizationAgent(out_dir=tmp_path / "out")
    for request in (None, OptimizationRequest(workload="digits-mlp")):  # the recorded request, or the caller's
        with pytest.raises(RecordingFormatError) as raised:
            agent.optimize_training(request, replay=folder)
        message = str(raised.value)
        assert "\n" not in message and isinstance(raised.value, HyperparameterError)
        assert found in message
        assert f"trainopt {trainopt_version()} replays format {RECORDING_FORMAT}" in message
        assert f"--record {folder}" in message and "python3 tests/agent/record_cassettes.py" in message
        assert raised.value.details["format"] == meta.get("format")
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_a_recording_names_its_format_and_trainopt_version(tmp_path):
    recording = Recording(tmp_path / "rec", "record")
    recording.write_meta({"workload": "digits-mlp"})
    meta = json.loads((tmp_path / "rec" / META).read_text())
    assert meta["format"] == RECORDING_FORMAT and meta["trainopt"] == trainopt_version() != "unknown"
    recording.check_format()  # its own format: accepted
