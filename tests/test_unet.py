"""The plain U-Net: architecture, and equality with deepCR's own published ACS-WFC model."""
import importlib.util

import numpy as np
import pytest
import torch

from cosmiq_pyro import UNet2Sigmoid


def conv_params(c_in, c_out, k):
    return c_in * c_out * k * k + c_out


def test_parameter_count_matches_deepcr_architecture():
    # Hand count for h = 32 with batch norm (2 parameters per channel per norm layer):
    h = 32
    inc = conv_params(1, h, 3) + 2 * h + conv_params(h, h, 3) + 2 * h
    down = conv_params(h, 2 * h, 3) + 4 * h + conv_params(2 * h, 2 * h, 3) + 4 * h
    up = (2 * h * h * 2 * 2 + h) + conv_params(2 * h, h, 3) + 2 * h + conv_params(h, h, 3) + 2 * h
    head = conv_params(h, 1, 1)
    assert inc + down + up + head == 101_473
    net = UNet2Sigmoid(hidden=32, norm="batch")
    assert sum(p.numel() for p in net.parameters()) == 101_473
    # group norm has the same affine parameters, no norm has none
    assert sum(p.numel() for p in UNet2Sigmoid(norm="group").parameters()) == 101_473
    assert sum(p.numel() for p in UNet2Sigmoid(norm="none").parameters()) == 101_473 - 2 * (2 * h + 2 * (2 * h) + 2 * h)


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_forward_shape_and_range(norm):
    net = UNet2Sigmoid(hidden=8, norm=norm).eval()
    x = torch.randn(2, 1, 20, 28) * 50 + 100
    with torch.no_grad():
        p = net(x)
        z = net.logits(x)
    assert p.shape == (2, 1, 20, 28)
    assert torch.all((p >= 0) & (p <= 1))
    torch.testing.assert_close(p, torch.sigmoid(z))


@pytest.mark.parametrize("bad, error", [(dict(norm="layer"), ValueError), (dict(hidden=0), ValueError),
                                        (dict(n_channels=1.5), TypeError)])  # a wrong type is a TypeError
def test_bad_arguments_name_the_argument(bad, error):
    name = next(iter(bad))
    with pytest.raises(error, match=name):
        UNet2Sigmoid(**bad)


def test_config_rebuilds_the_same_architecture():
    net = UNet2Sigmoid(n_channels=2, hidden=12, norm="group")
    cfg = dict(net.config)
    assert cfg.pop("kind") == "UNet2Sigmoid"
    twin = UNet2Sigmoid(**cfg)
    assert {k: v.shape for k, v in twin.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}


def test_from_deepcr_equals_deepcr_clean():
    """Our twin with deepCR's published weights gives deepCR's own probabilities."""
    from deepCR import deepCR
    from cosmiq_pyro.data.simulate import simulate_frame

    frame = simulate_frame(size=256, field="GC", filter="F606W", exptime_s=600.0, seed=3)
    image = frame.image
    theirs = deepCR(mask="ACS-WFC", device="CPU").clean(image, binary=False, inpaint=False)
    ours_net = UNet2Sigmoid.from_deepcr("ACS-WFC")
    with torch.no_grad():
        ours = ours_net(torch.from_numpy(image)[None, None])[0, 0].numpy()
    assert ours.shape == theirs.shape == image.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
    # a realistic image: deepCR flags a fair share of the true CR pixels
    assert (theirs[frame.mask] > 0.5).mean() > 0.3


def test_from_deepcr_errors(monkeypatch):
    with pytest.raises(ValueError, match="unknown deepCR mask model 'nonesuch'"):
        UNet2Sigmoid.from_deepcr("nonesuch")
    with pytest.raises(ValueError, match="no batch norm"):
        UNet2Sigmoid.from_deepcr("WFC3-UVIS")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "learned_models" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install deepCR"):
        UNet2Sigmoid.from_deepcr("ACS-WFC")
