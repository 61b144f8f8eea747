"""Predictive methods: tiles, chunked posterior draws, the T rule, memory, devices."""
import numpy as np
import pytest
import torch

from cosmiq_pyro import UNet2Sigmoid, UNet2SigmoidVI, fit_svi, predict
from cosmiq_pyro.inference import predictive
from cosmiq_pyro.inference.draws import DRAW_BLOCK, MAX_T, block_seed, weight_chunks
from cosmiq_pyro.inference.methods import check_method
from cosmiq_pyro.models.bayesian import draw_weights, probs_given_weights
from cosmiq_pyro.utils.tiling import tile_margin
from cosmiq_pyro.utils.torchtools import binary_entropy


def sky(shape, seed=1):
    return np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)


def randomise_norms(net, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.running_mean.normal_(0, 0.3, generator=gen)
                layer.running_var.uniform_(0.5, 2.0, generator=gen)
                layer.weight.uniform_(0.7, 1.3, generator=gen)
                layer.bias.normal_(0, 0.2, generator=gen)
    return net.eval()


@pytest.fixture(scope="module")
def fit(one_torch_thread):
    """A VI twin with batch norms and a wide posterior (draws differ visibly)."""
    plain = randomise_norms(UNet2Sigmoid(hidden=4, norm="batch"), seed=3)
    image = sky((2, 16, 16))
    return fit_svi(UNet2SigmoidVI(hidden=4, norm="batch"), (image, image > 9, None), epochs=0,
                   init_from=plain, init_scale=0.05, progress=False)


def reference(fit, draws, image):
    """p and A from the sequential Pyro model, one pass per draw, untiled (float64)."""
    model = fit.model.eval()
    padded = np.pad(image, ((0, -image.shape[0] % 4), (0, -image.shape[1] % 4)), mode="symmetric")
    x = torch.from_numpy(padded)[None, None]
    T = len(next(iter(draws.values())))
    with torch.no_grad():
        probs = torch.stack([probs_given_weights(model, x, {k: v[t] for k, v in draws.items()})[0, 0]
                             for t in range(T)]).double()[:, :image.shape[0], :image.shape[1]]
    return probs.mean(0).numpy(), binary_entropy(probs).mean(0).numpy()


def all_draws(fit, T, seed):
    chunks = list(weight_chunks(fit.model, fit.guide, T, seed, chunk=T))
    assert len(chunks) == 1
    return chunks[0]


@pytest.mark.parametrize("method", ["mc", "moments"])
def test_tiled_maps_equal_untiled_for_every_method(fit, method):
    image = sky((70, 58))
    T = None if method == "moments" else 4
    whole = predict(fit, image, method=method, T=T, seed=3, tile=1024)
    tiled = predict(fit, image, method=method, T=T, seed=3, tile=16)  # 20 tiles of 16 px, margins 12 px
    for name in ("prob", "aleatoric", "epistemic"):
        np.testing.assert_allclose(getattr(tiled, name), getattr(whole, name), atol=2e-6, rtol=0)
    assert whole.epistemic.max() > 1e-4
    assert whole.method == method and tiled.T == T


def test_margin_is_the_receptive_field_rounded_to_the_pooling_grid(fit):
    assert tile_margin(fit.model) == 12  # radius 9 px (tests/test_fastnet.py measures it), grid 4


def test_chunked_monte_carlo_does_not_depend_on_the_chunk_size(fit, monkeypatch):
    """T = 70 draws held 5, 32 or 100 at a time: identical arrays; and they equal the sequential
    Pyro model run on all 70 draws at once."""
    image = sky((36, 40), seed=4)
    maps = []
    for chunk in (5, DRAW_BLOCK, 100):
        monkeypatch.setattr(predictive, "DRAW_CHUNK", chunk)
        maps.append(predict(fit, image, T=70, seed=11))
    for other in maps[1:]:
        for name in ("prob", "entropy", "aleatoric", "epistemic"):
            np.testing.assert_array_equal(getattr(other, name), getattr(maps[0], name))
    prob, alea = reference(fit, all_draws(fit, 70, 11), image)
    np.testing.assert_allclose(maps[0].prob, prob, atol=1e-5)
    np.testing.assert_allclose(maps[0].aleatoric, alea, atol=1e-5)


def test_up_to_one_block_the_draws_are_pyros_predictive_draws(fit):
    ours = all_draws(fit, 8, 5)
    theirs = draw_weights(fit.model, fit.guide, 8, seed=5)
    for site in theirs:
        torch.testing.assert_close(ours[site], theirs[site], atol=0, rtol=0)
    chunks = list(weight_chunks(fit.model, fit.guide, 3 * DRAW_BLOCK + 1, 5, chunk=DRAW_BLOCK))
    assert [len(c["head.bias"]) for c in chunks] == [DRAW_BLOCK] * 3 + [1]
    later = draw_weights(fit.model, fit.guide, DRAW_BLOCK, seed=block_seed(5, 2))
    torch.testing.assert_close(chunks[2]["head.weight"], later["head.weight"], atol=0, rtol=0)


def test_T_counts_monte_carlo_draws_only(fit):
    image = sky((20, 20))
    with pytest.raises(ValueError, match="T=8 counts Monte Carlo draws; method 'moments' makes none"):
        predict(fit, image, method="moments", T=8)
    pred = predict(fit, image, method="moments")
    assert pred.T is None and pred.method == "moments"
    with pytest.raises(ValueError, match="method must be one of 'mc', 'moments'"):
        predict(fit, image, method="MC")
    assert check_method(None, T=8).name == "mc"  # asking for draws asks for Monte Carlo
    assert predict(UNet2Sigmoid(hidden=4).eval(), image, method="moments").method == "deterministic"


def test_an_absurd_T_is_refused_before_any_work(fit, monkeypatch):
    def no_draws(*args, **kwargs):
        raise AssertionError("drew weights")
    monkeypatch.setattr(predictive, "weight_chunks", no_draws)
    with pytest.raises(ValueError, match=f"T must be at most {MAX_T}"):
        predict(fit, sky((8, 8)), T=100_000_000)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error(fit):
    with pytest.raises(ValueError, match="no CUDA device"):
        predict(fit, sky((8, 8)), T=2, device="cuda")


def test_no_more_than_one_block_of_draws_is_made_or_fused_at_once(fit, monkeypatch):
    """T = 200: Pyro's Predictive is asked for at most DRAW_BLOCK draws at a time and each pass
    folds at most DRAW_CHUNK of them, so memory does not grow with T."""
    from cosmiq_pyro.inference import draws as draws_module
    asked, fused = [], []
    real_draw, real_fuse = draws_module.draw_weights, predictive._fused_passes
    monkeypatch.setattr(draws_module, "draw_weights", lambda *a, **k: asked.append(a[2]) or real_draw(*a, **k))
    monkeypatch.setattr(predictive, "_fused_passes",
                        lambda net, d, k: fused.append(len(d["head.bias"])) or real_fuse(net, d, k))
    predict(fit, sky((8, 8)), T=200, seed=1)
    assert max(asked) == DRAW_BLOCK and len(asked) == 7
    assert max(fused) <= predictive.DRAW_CHUNK and sum(fused) == 200


MEMORY_SCRIPT = """
import resource, sys
import numpy as np, torch
torch.set_num_threads(1)
from cosmiq_pyro import load, predict
vi = load("ACS-WFC-VI")  # 101,473 weights: about 0.8 MB per draw and its folded copy
x = np.random.default_rng(0).normal(100, 10, (8, 8)).astype(np.float32)
predict(vi, x, T=64, novelty=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
predict(vi, x, T=4096, novelty=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_T():
    """T = 4096 works (what references need), and the process's peak RSS after it exceeds that
    after T = 64 by under 60 MB (holding all draws would add about 0.8 MB per draw: 3.2 GB;
    measured 773 MB at T = 1024 before draws were chunked)."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, env=env,
                         timeout=600, check=True)
    growth_mb = float(out.stdout.strip().splitlines()[-1])
    assert growth_mb < 60, f"peak memory grew by {growth_mb:.0f} MB from T=64 to T=4096"


def test_the_novelty_score_does_not_depend_on_the_method():
    """The shipped model's novelty from predict equals image_novelty's (the posterior means'
    encoder, no maps) for every method."""
    from cosmiq_pyro import load
    from cosmiq_pyro.data.simulate import simulate_frame
    from cosmiq_pyro.inference.novelty import image_novelty
    vi = load("ACS-WFC-VI")
    image = simulate_frame(128, seed=3).image
    expected = image_novelty(vi, image)
    for method, T in (("mc", 2), ("moments", None)):
        pred = predict(vi, image, method=method, T=T, tile=64)
        assert pred.novelty == pytest.approx(expected.score, rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(pred.novelty_map, expected.map, rtol=1e-5, atol=1e-6)
