"""The shared argument validators (`cosmiq_pyro.utils.checks`): a wrong type is a TypeError, a
value out of range a ValueError, and both messages name the argument."""
import math

import numpy as np
import pytest

from cosmiq_pyro.utils.checks import MAX_SEED, check_float, check_int, check_probability, check_seed


def test_check_int_accepts_python_and_numpy_integers():
    assert check_int(3, "n") == 3 and type(check_int(np.int64(3), "n")) is int
    assert check_int(0, "n", minimum=0) == 0
    assert check_int(-7, "n") == -7  # no minimum: any int


@pytest.mark.parametrize("value, minimum, error", [
    (2.5, None, TypeError), ("3", None, TypeError), (True, None, TypeError), (np.float32(2), 1, TypeError),
    (0, 1, ValueError), (-1, 0, ValueError),
])
def test_check_int_refuses(value, minimum, error):
    with pytest.raises(error, match="^hidden must be"):
        check_int(value, "hidden", minimum=minimum)


def test_check_seed_bounds():
    assert check_seed(0) == 0 and check_seed(MAX_SEED) == 2**63 - 1
    with pytest.raises(ValueError, match="seed must be an int in"):
        check_seed(MAX_SEED + 1)
    with pytest.raises(ValueError, match="seed must be"):
        check_seed(-1)


def test_check_float_bounds_and_types():
    assert check_float(2, "x") == 2.0 and type(check_float(np.float32(0.5), "x")) is float
    assert check_float(0.0, "x", minimum=0.0, maximum=0.0) == 0.0  # bounds are inclusive
    for bad, error in ((True, TypeError), ("1", TypeError), (math.nan, ValueError), (math.inf, ValueError)):
        with pytest.raises(error, match="^x must be"):
            check_float(bad, "x")
    with pytest.raises(ValueError, match="x must be > 0"):
        check_float(0.0, "x", positive=True)
    with pytest.raises(ValueError, match="x must be <= 1"):
        check_float(1.5, "x", maximum=1)


@pytest.mark.parametrize("value", [0, 1, 0.5, np.float64(0.25)])
def test_check_probability_accepts_the_closed_interval(value):
    assert check_probability(value, "threshold") == float(value)


@pytest.mark.parametrize("value, error", [(-0.01, ValueError), (1.01, ValueError), (math.nan, ValueError),
                                          (True, TypeError), (None, TypeError), ("0.5", TypeError)])
def test_check_probability_refuses(value, error):
    with pytest.raises(error, match=r"^threshold must be a probability in \[0, 1\]"):
        check_probability(value, "threshold")
