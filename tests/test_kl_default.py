"""`fit_svi`'s default objective is the exact per-pixel ELBO, and with its defaults the posterior
widths are learned from the data, not left where ``init_scale`` put them (issue 25, item 10)."""
import inspect

import numpy as np
import pytest
import torch

from cosmiq_pyro import UNet2SigmoidVI, fit_svi, predict
from cosmiq_pyro.models.guides import guide_scales

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_default_kl_beta_is_one_over_the_pixels_of_an_image():
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 10.0, (4, 16, 16)).astype(np.float32)
    data = (image, image > 115, None)

    def losses(**kw):
        torch.manual_seed(0)
        return fit_svi(UNet2SigmoidVI(hidden=2), data, epochs=1, batch_size=2, progress=False, **kw).history["loss"]

    default = losses()
    assert default == losses(kl_beta=1.0 / (16 * 16))  # the same steps, bit for bit
    assert default != losses(kl_beta=1e-6)  # and the argument still counts
    # the facade and the command line pass "no value" through to this default
    from cosmiq_pyro.app.cli import build_parser
    from cosmiq_pyro.training import train
    assert inspect.signature(fit_svi).parameters["kl_beta"].default is None
    assert inspect.signature(train).parameters["kl_beta"].default is None
    assert build_parser().parse_args(["train", "simulate:4", "--bayesian", "--out", "m.pth"]).kl_beta is None


def _frames(n, size, seed):
    from cosmiq_pyro.data.datasets import SimulatedDataset
    ds = SimulatedDataset(n, size=size, seed=seed)
    items = [ds[i] for i in range(n)]
    return tuple(torch.stack([item[k][0] for item in items]).numpy() for k in range(3))  # 3 x (N, H, W)


@pytest.mark.slow
def test_with_its_defaults_fit_svi_learns_widths_whatever_init_scale():
    """The experiment of docs/defaults.md with the defaults: two fits from scratch that differ only
    in init_scale (1e-3 vs 1e-2), hidden 8, 24 simulated 64x64 frames, batch 4, 50 epochs, end
    with per-layer median sigma of the weights and the mean epistemic of a held-out frame within
    2x of each other."""
    from cosmiq_pyro.data.seeds import HELD_OUT_SEED
    train = _frames(24, 64, 0)
    held_out = _frames(1, 128, HELD_OUT_SEED)[0][0]
    ends = []
    for init_scale in (1e-3, 1e-2):
        torch.manual_seed(0)
        result = fit_svi(UNet2SigmoidVI(hidden=8), train, epochs=50, batch_size=4, init_scale=init_scale,
                         progress=False)
        sites = [s for s in result.model.weight_sites if s.endswith(".weight")]
        sigma = {s: float(v.median()) for s, v in guide_scales(result.guide, sites).items()}
        epistemic = float(predict(result, held_out, T=32, seed=0, novelty=False).epistemic.mean())
        ends.append((sigma, epistemic))
    (small, e_small), (large, e_large) = ends
    ratios = {s: large[s] / small[s] for s in small}
    assert all(0.5 <= r <= 2.0 for r in ratios.values()), ratios
    assert 0.5 <= e_large / e_small <= 2.0, (e_small, e_large)
