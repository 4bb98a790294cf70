import pytest

from trainopt.errors import ConvergenceError, OptimizationError


def test_error_carries_type_and_details():
    error = ConvergenceError("loss is nan at step 3", {"step": 3})
    # A subclass is still an OptimizationError with the right type tag.
    assert isinstance(error, OptimizationError)
    assert error.type == "convergence"
    assert error.details == {"step": 3}
    assert "step 3" in str(error)


def test_unknown_error_type_is_rejected():
    with pytest.raises(ValueError, match="type='memory'"):
        OptimizationError("x", "memory")


def test_workload_error_names_workload_phase_and_where_it_was_raised():
    from trainopt.errors import WorkloadError

    def loss():
        return {}["labels"]

    try:
        loss()
    except KeyError as cause:
        error = WorkloadError.from_exception("custom", "forward/loss", cause)
    # typed, tagged, the frame that raised it in the message, the full traceback in details
    assert isinstance(error, OptimizationError) and error.type == "workload"
    assert (error.workload, error.phase) == ("custom", "forward/loss")
    assert "KeyError during forward/loss at test_errors.py" in error.message and "in loss" in error.message
    assert "Traceback" in error.details["traceback"]
