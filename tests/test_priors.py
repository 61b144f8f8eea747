"""Prior objects, the likelihood part, and no process-wide Pyro side effects."""
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.nn import PyroModule, PyroParam

from cosmiq_pyro import (CentredNormalPrior, KaimingNormalPrior, UNet2Sigmoid, UNet2SigmoidVI, fit_svi, load,
                         predict, save)
from cosmiq_pyro.models.priors import IIDNormalPrior, prior_from_dict


def site_fn(model, site):
    trace = poutine.trace(model).get_trace(torch.zeros(1, 1, 8, 8))
    return trace.nodes[site]["fn"].base_dist


def test_kaiming_prior_scale_is_gain_over_sqrt_fan_in_per_layer():
    model = UNet2SigmoidVI(hidden=4, prior=KaimingNormalPrior())
    # fan_in = in_channels * kernel area: inc.conv1 1*9, down.block.conv1 4*9, head 4*1;
    # ConvTranspose2d (in 8, out 4, 2x2): torch's convention weight.size(1) * area = 4*4
    expected = {"inc.conv1.weight": math.sqrt(2 / 9), "down.block.conv1.weight": math.sqrt(2 / 36),
                "head.weight": math.sqrt(2 / 4), "head.bias": math.sqrt(2 / 4),
                "up.upsample.weight": math.sqrt(2 / 16)}
    for site, sd in expected.items():
        fn = site_fn(model, site)
        torch.testing.assert_close(fn.scale, torch.full(fn.batch_shape, sd))
        torch.testing.assert_close(fn.loc, torch.zeros(fn.batch_shape))


def test_centred_prior_is_centred_on_the_given_weights():
    torch.manual_seed(1)
    pretrained = UNet2Sigmoid(hidden=4)
    model = UNet2SigmoidVI(hidden=4, prior=CentredNormalPrior(pretrained, scale=0.05, source="test"))
    for site in ("inc.conv1.weight", "up.upsample.bias", "head.weight"):
        fn = site_fn(model, site)
        torch.testing.assert_close(fn.loc, pretrained.state_dict()[site])
        torch.testing.assert_close(fn.scale, torch.full(fn.batch_shape, 0.05))
    value = torch.randn(4, 1, 3, 3)
    expected = torch.distributions.Normal(pretrained.inc.conv1.weight.detach(), 0.05).log_prob(value).sum()
    torch.testing.assert_close(model.prior_distribution("inc.conv1.weight").log_prob(value).sum(), expected)
    with pytest.raises(ValueError, match="lack 'head.bias'"):
        state = pretrained.state_dict()
        del state["head.bias"]
        UNet2SigmoidVI(hidden=4, prior=CentredNormalPrior(state, scale=0.05))
    with pytest.raises(ValueError, match="shape"):
        UNet2SigmoidVI(hidden=8, prior=CentredNormalPrior(pretrained, scale=0.05))


def test_priors_follow_the_module_dtype():
    for prior in (KaimingNormalPrior(), CentredNormalPrior(UNet2Sigmoid(hidden=2), 0.1)):
        model = UNet2SigmoidVI(hidden=2, prior=prior).double()
        trace = poutine.trace(model).get_trace(torch.zeros(1, 1, 8, 8, dtype=torch.float64))
        assert trace.nodes["inc.conv2.weight"]["value"].dtype == torch.float64


def test_prior_dicts_round_trip_and_bad_specs():
    for prior in (IIDNormalPrior(0.3), KaimingNormalPrior(gain=1.5)):
        assert prior_from_dict(prior.to_dict()) == prior
    assert UNet2SigmoidVI(hidden=2, prior_scale=0.3).prior == IIDNormalPrior(0.3)
    assert UNet2SigmoidVI(hidden=2, prior={"kind": "KaimingNormalPrior", "gain": 2.0}).prior == KaimingNormalPrior(2.0)
    with pytest.raises(ValueError, match="not both"):
        UNet2SigmoidVI(hidden=2, prior=KaimingNormalPrior(), prior_scale=1.0)
    with pytest.raises(ValueError, match="kind"):
        prior_from_dict({"kind": "Laplace"})
    with pytest.raises(ValueError, match="prior scale"):
        IIDNormalPrior(-1.0)
    with pytest.raises(TypeError, match="prior scale"):  # a bool is not a number here
        IIDNormalPrior(True)


def test_centred_prior_checkpoint_restores_its_means(tmp_path):
    image = np.random.default_rng(0).normal(100, 10, (4, 16, 16)).astype(np.float32)
    torch.manual_seed(3)
    pretrained = UNet2Sigmoid(hidden=2)
    fit = fit_svi(UNet2SigmoidVI(hidden=2, prior=CentredNormalPrior(pretrained, 0.02, source="unit test")),
                  (image, image > 115, None), epochs=1, batch_size=2, init_from=pretrained, progress=False)
    path = save(tmp_path / "centred.pth", fit)
    assert torch.load(path, weights_only=True)["config"]["prior"] == {
        "kind": "CentredNormalPrior", "scale": 0.02, "source": "unit test"}
    loaded = load(path)
    torch.testing.assert_close(loaded.model.prior_distribution("head.weight").loc,
                               pretrained.state_dict()["head.weight"])
    a, b = predict(fit, image[0], T=3, seed=1), predict(loaded, image[0], T=3, seed=1)
    np.testing.assert_array_equal(a.prob, b.prob)


class UserModel(PyroModule):
    def __init__(self):
        super().__init__()
        self.loc = PyroParam(torch.tensor(0.5))

    def forward(self):
        return pyro.sample("z", dist.Normal(self.loc, 1.0))


def test_users_pyro_params_stay_in_the_global_param_store():
    """Our models run with module-local params only inside their own calls: a user's PyroModule
    built and run around them still registers its parameters in Pyro's global store."""
    pyro.clear_param_store()
    assert pyro.settings.get("module_local_params") is False
    image = np.random.default_rng(0).normal(100, 10, (4, 16, 16)).astype(np.float32)
    fit = fit_svi(UNet2SigmoidVI(hidden=2), (image, image > 115, None), epochs=1, batch_size=2, progress=False)
    predict(fit, image[0], T=2)
    user = UserModel()
    user()
    assert pyro.settings.get("module_local_params") is False
    assert "loc" in pyro.get_param_store().keys()
    assert not any(k.startswith(("inc.", "AutoNormal")) for k in pyro.get_param_store().keys())
    pyro.clear_param_store()


# ---------------------------------------------------------------- a prior by name (cosmiq train, deepCR facade)

def test_make_prior_by_name_and_its_number():
    from cosmiq_pyro.models.priors import make_prior

    assert make_prior("iid") == IIDNormalPrior(1.0) and make_prior("iid", 0.3) == IIDNormalPrior(0.3)
    assert make_prior("kaiming") == KaimingNormalPrior(math.sqrt(2)) and make_prior("kaiming", 1.0).gain == 1.0
    net = UNet2Sigmoid(hidden=2)
    centred = make_prior("centred", weights=net, source="mine")
    assert centred.to_dict() == {"kind": "CentredNormalPrior", "scale": 0.1, "source": "mine"}
    with pytest.raises(ValueError, match="centred on given weights"):
        make_prior("centred", 0.1)
    with pytest.raises(ValueError, match=r"prior must be one of \('iid', 'kaiming', 'centred'\)"):
        make_prior("laplace")


def test_deepcr_train_facade_takes_a_prior_by_name(tmp_path, tiny_set):
    from cosmiq_pyro.model import deepCR  # noqa: F401  (the facade's package)
    from cosmiq_pyro.training import train

    image, mask, ignore = tiny_set
    kaiming = train(image=image, mask=mask, ignore=ignore, bayesian=True, hidden=2, prior="kaiming",
                    prior_scale=1.0, verbose=False, directory=str(tmp_path))
    assert kaiming.network.prior == KaimingNormalPrior(1.0)
    assert float(kaiming.network.inc.conv1.prior_sd) == pytest.approx(1 / 3)  # gain 1 / sqrt(1 * 3 * 3)
    start = UNet2Sigmoid(hidden=2)
    path = save(tmp_path / "twin.pth", start)
    centred = train(image=image, mask=mask, ignore=ignore, bayesian=True, prior="centred", prior_scale=0.05,
                    init_from=path, verbose=False, directory=str(tmp_path))
    assert centred.network.prior.to_dict() == {"kind": "CentredNormalPrior", "scale": 0.05, "source": str(path)}
    centre = centred.network.prior_centre()
    assert all(torch.equal(centre[site], start.state_dict()[site]) for site in centred.network.weight_sites)
    with pytest.raises(ValueError, match="need bayesian=True"):
        train(image=image, mask=mask, ignore=ignore, prior="kaiming", verbose=False, directory=str(tmp_path))
    with pytest.raises(ValueError, match="centred on given weights"):
        train(image=image, mask=mask, ignore=ignore, bayesian=True, prior="centred", verbose=False,
              directory=str(tmp_path))


def test_cosmiq_train_reaches_a_non_iid_prior(tmp_path, capsys):
    from cosmiq_pyro.app.cli import build_parser, main
    from cosmiq_pyro.models.priors import PRIOR_NAMES

    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    assert next(a for a in train_parser._actions if a.dest == "prior").choices == PRIOR_NAMES

    out = tmp_path / "k.pth"
    assert main(["train", "simulate:4", "--bayesian", "--prior", "kaiming", "--prior-scale", "1", "--hidden", "2",
                 "--size", "32", "--epochs", "1", "--batch-size", "2", "--out", str(out), "--quiet"]) == 0
    model = load(out).model
    assert model.config["prior"] == {"kind": "KaimingNormalPrior", "gain": 1.0}
    assert float(model.head.prior_sd) == pytest.approx(1 / math.sqrt(2))  # gain 1 / sqrt(2 channels * 1 * 1)
    assert main(["train", "simulate:4", "--deterministic", "--prior", "kaiming", "--out", str(tmp_path / "d.pth")]) == 2
    assert "--prior and --prior-scale need --bayesian" in capsys.readouterr().err
    assert main(["train", "simulate:4", "--bayesian", "--prior", "centred", "--out", str(tmp_path / "c.pth")]) == 2
    assert "centred on given weights" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pth"]
