from typer.testing import CliRunner

import trainopt
from trainopt.cli import app

runner = CliRunner()


def test_version_prints_the_package_version():
    result = runner.invoke(app, ["--version"])
    # The version comes from the installed distribution metadata.
    assert result.exit_code == 0
    assert trainopt.__version__ in result.output


def test_help_lists_the_workloads_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "workloads" in result.output


def test_workloads_json_is_a_list():
    result = runner.invoke(app, ["workloads", "--json"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().startswith("[")
