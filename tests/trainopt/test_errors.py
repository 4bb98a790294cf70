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
