"""The held-out seed convention: held-out frames can never be training frames."""
import numpy as np

from cosmiq_pyro.app import cli_parser, demo
from cosmiq_pyro.data.seeds import HELD_OUT_SEED
from cosmiq_pyro.data.simulate import frame_seed


def test_held_out_frame_seeds_are_above_every_training_frame_seed():
    assert HELD_OUT_SEED == 2**32
    assert [frame_seed(HELD_OUT_SEED, i) for i in range(3)] == [2**32, 2**32 + 1, 2**32 + 2]
    assert frame_seed(HELD_OUT_SEED + 10**6, 5) == 2**32 + 10**6 + 5
    rng = np.random.default_rng(0)
    training = [frame_seed(int(s), int(i)) for s, i in zip(rng.integers(0, 2**32 - 1, 200),
                                                           rng.integers(0, 10**6, 200))]
    training += [frame_seed(2**32 - 1, i) for i in range(50)]
    assert max(training) < 2**32


def test_cli_and_demo_use_the_one_convention():
    assert demo.DemoConfig().test_seed == HELD_OUT_SEED
    args = cli_parser.build_parser().parse_args(["evaluate", "simulate:2", "--model", "m.pth"])
    assert args.data_seed == HELD_OUT_SEED
