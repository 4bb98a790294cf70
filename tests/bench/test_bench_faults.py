"""bench/faults.py: the in-process scenarios, and the counting its table rests on."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def faults(bench_script):
    return bench_script("faults")


def test_failing_writes_leave_whole_files_and_clear_errors(faults, tmp_path):
    row = faults.failing_writes(tmp_path)
    # six cases (write, flush, rename; with and without an old file): nothing half-written, OSError each time
    assert row["runs"] == 6 and row["wrong_results"] == 0 and row["unclear_errors"] == 0, row["notes"]


def test_the_table_totals_and_says_whether_each_target_holds(faults):
    rows = [faults.row("a", 2, 0, 0, 0, []), faults.row("b", 3, 1, 0, 0, [])]
    assert "| **all** | 5 | 1 | 0 | 0 |" in faults.table(rows)
    assert faults.verdicts(rows) == ["target 0 trials lost: 1 -> falls short",
                                     "target 0 wrong results: 0 -> holds", "target 0 unclear errors: 0 -> holds"]


def test_a_rich_or_plain_traceback_counts_as_unclear(faults):
    assert faults.traceback_shown("Traceback (most recent call last):\n  ...")
    assert faults.traceback_shown("│ ❱ 150 │ raise ResourceError(\nResourceError: [resource] cannot open")
    assert not faults.traceback_shown("error (resource): cannot open the trial store /x/trials.db: file is not a db")


def test_files_whole_spots_a_half_written_result(faults, tmp_path):
    (tmp_path / "result.json").write_text('{"recommended": {"lr": 0.0')
    assert not faults.files_whole(tmp_path)
    (tmp_path / "result.json").write_text('{"recommended": {}}')
    assert faults.files_whole(tmp_path)


def test_kill_moments_are_spread_over_the_run_and_placed_between_its_trials(faults):
    import random

    timeline = [10.0, 50.0, 51.0]  # when the reference run stored its trials
    moments = faults.moments_over(100.0, timeline, 20, random.Random(0))
    at = [(timeline[k - 1] if k else 0.0) + offset for k, offset in moments]
    # one moment in each twentieth of 2..95 s, each as "k trials stored, then offset seconds"
    assert all(2.0 + i * 4.65 <= t < 2.0 + (i + 1) * 4.65 for i, t in enumerate(at))
    assert all(offset >= 0 and k == sum(t <= x for t in timeline) for (k, offset), x in zip(moments, at, strict=True))
    assert {k for k, _ in moments} == {0, 1, 3}  # before the first trial, between, and after the last


def test_results_name_no_path_of_this_machine(faults, tmp_path):
    rows = [faults.row("a", 1, 0, 0, 1, [f"rerun failed: cannot open {tmp_path}/run-3/trials.db in {faults.ROOT}"])]
    # the scratch folder becomes <tmp>, the repository "."
    assert faults.portable(rows, tmp_path)[0]["notes"] == ["rerun failed: cannot open <tmp>/run-3/trials.db in ."]


def test_the_header_names_the_commit_torch_and_load(faults):
    meta = {"command": "python bench/faults.py", "commit": "0123456789abcdef", "dirty": False, "torch": "2.13.0",
            "python": "3.11.7", "moments": "20 of sweep", "wall_s": 600.0, "cpus": 2,
            "load": {"mean": 3.0, "min": 2.0, "max": 4.5}}
    text = faults.header(meta)
    assert "`0123456789ab`" in text and "torch 2.13.0" in text and "load average 3.0" in text
    assert "uncommitted" not in text


def test_a_wrong_answer_is_noted_field_by_field(faults):
    # only the fields that differ, old -> new
    assert faults.differences({"lr": 0.1, "adopted": True}, {"lr": 0.2, "adopted": True}) == "lr: 0.1 -> 0.2"


def test_stored_keys_counts_the_finished_work_of_every_study(faults, tmp_path):
    import sqlite3

    db = tmp_path / "trials.db"
    with sqlite3.connect(db) as connection:
        connection.executescript(
            "create table studies (study_id int, study_name text); create table trials (trial_id int, study_id int, "
            "state text); create table trial_user_attributes (trial_id int, key text, value_json text);"
            "insert into studies values (1, 'trainopt-trials'), (2, 'trainopt-tool-outputs');"
            "insert into trials values (1, 1, 'COMPLETE'), (2, 2, 'COMPLETE'), (3, 1, 'RUNNING');"
            "insert into trial_user_attributes values (1, 'key', '\"a\"'), (2, 'key', '\"b\"'), (3, 'key', '\"c\"');")
    # a finished trial and a stored tool output; the running trial is not finished work
    assert sorted(faults.stored_keys(db)) == ["trainopt-tool-outputs/b", "trainopt-trials/a"]
    assert faults.stored_keys(tmp_path / "missing.db") == []


def test_the_control_run_keeps_the_tool_outputs_and_drops_the_trials(faults, tmp_path, monkeypatch):
    import sqlite3

    out = tmp_path / "out"
    out.mkdir()
    with sqlite3.connect(out / "trials.db") as connection:
        connection.executescript(
            "create table studies (study_id int, study_name text); create table trials (trial_id int, study_id int, "
            "state text); create table trial_user_attributes (trial_id int, key text, value_json text);"
            "insert into studies values (1, 'trainopt-trials'), (2, 'trainopt-tool-outputs');"
            "insert into trials values (1, 1, 'COMPLETE'), (2, 2, 'COMPLETE');"
            "insert into trial_user_attributes values (1, 'key', '\"a\"'), (2, 'key', '\"b\"');")
    seen = {}

    def fake_run(args, where, timeout=900):
        seen["keys"] = faults.stored_keys(where / "trials.db")
        return 0, '{"answer": 1}', "", 1.0

    monkeypatch.setattr(faults, "run_cli", fake_run)
    got = faults.same_measurements_answer(["optimize"], faults.json.loads, out, tmp_path / "control")
    # the control starts with the measurements (tool outputs) only, and the killed run's store is untouched
    assert seen["keys"] == ["trainopt-tool-outputs/b"] and got == {"answer": 1}
    assert sorted(faults.stored_keys(out / "trials.db")) == ["trainopt-tool-outputs/b", "trainopt-trials/a"]
