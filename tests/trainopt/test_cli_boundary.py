"""The CLI's one boundary: an OptimizationError no command caught is one line and exit 2, not a traceback."""

import pytest

from trainopt.cli import app


def test_a_damaged_store_is_one_line_naming_the_file(tmp_path, capsys):
    (tmp_path / "trials.db").write_bytes(b"this is not a database\n" * 100)
    with pytest.raises(SystemExit) as exit_info:
        app(["sweep", "--workload", "digits-mlp", "--lr", "1e-3", "--steps", "5", "--device", "cpu",
             "--out", str(tmp_path)], prog_name="trainopt")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error (resource): cannot open the trial store") and str(tmp_path / "trials.db") in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
