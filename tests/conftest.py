"""Shared fixtures: a tiny hand-made labelled set (sky + noise + straight CR streaks)."""
import numpy as np
import pytest
import torch

# One intra-op thread for the whole suite: tiny nets and images run as fast as with two on an idle
# machine, a loaded machine does not stall them, and astroscrappy's OpenMP loops do not wait on
# torch's idle workers (issue 12: `trained_pair` took 68 s with two threads, 4 s with one).
torch.set_num_threads(1)


def make_tiny_set(n=24, size=32, seed=0):
    """Images in electrons: sky 100 e- + Gaussian noise (sd 10) + 4-8 bright CR streaks each.

    The CR mask marks exactly the streak pixels; the last column of every frame is ignored and
    reads 0 e- (a dead column); its mask bits are set at random, so a loss that counted
    ignored pixels would differ from one that does not.
    """
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 10.0, (n, size, size)).astype(np.float32)
    mask = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        for _ in range(rng.integers(4, 9)):
            r, c = rng.integers(2, size - 8, 2)
            length = rng.integers(2, 8)
            if rng.random() < 0.5:
                mask[i, r, c:c + length] = True
            else:
                mask[i, r:r + length, c] = True
    image[mask] += rng.uniform(300, 2000, mask.sum()).astype(np.float32)
    ignore = np.zeros_like(mask)
    ignore[:, :, -1] = True
    image[ignore] = 0.0
    mask[ignore] = rng.random(int(ignore.sum())) < 0.5
    return image, mask, ignore


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module of tiny nets and images: as fast as two on an idle
    machine, immune to a loaded one, and astroscrappy's OpenMP loops do not wait on torch's."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_set():
    return make_tiny_set()


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Checkpoint files of a tiny VI model (one SVI epoch) and a tiny untrained twin: what the
    command-line and batch tests load by path."""
    from cosmiq_pyro import UNet2Sigmoid, UNet2SigmoidVI, fit_svi, save

    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    image = np.random.default_rng(1).normal(100, 10, (4, 16, 16)).astype(np.float32)
    vi = fit_svi(UNet2SigmoidVI(hidden=4), (image, image > 115, None), epochs=1, batch_size=2,
                 init_scale=0.05, progress=False)
    return {"vi": save(folder / "vi.pth", vi), "det": save(folder / "det.pth", UNet2Sigmoid(hidden=4).eval())}
