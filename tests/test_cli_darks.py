"""``cosmiq train DATA --darks DIR``: deepCR's 'simulate' mode from the command line."""
import numpy as np

from cosmiq_pyro.app.cli import main
from cosmiq_pyro.models.registry import load_model


def test_train_from_clean_images_and_darks(tmp_path, capsys):
    images, darks = tmp_path / "images", tmp_path / "darks"
    images.mkdir()
    darks.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        np.save(images / f"{i}.npy", rng.normal(100.0, 10.0, (16, 16)))
        dark = np.zeros((2, 16, 16))
        dark[0, i + 2, 3:9] = 2000.0  # a CR streak and its mask
        dark[1, i + 2, 3:9] = 1
        np.save(darks / f"{i}.npy", dark)
    out = tmp_path / "m.pth"
    status = main(["train", str(images), "--darks", str(darks), "--deterministic", "--epochs", "1", "--hidden", "4",
                   "--batch-size", "5", "--out", str(out), "--quiet"])
    assert status == 0, capsys.readouterr().err
    assert len(load_model(out).history["epochs"]) == 1
    status = main(["train", str(images), "--darks", str(tmp_path / "none"), "--deterministic", "--out",
                   str(tmp_path / "n.pth"), "--quiet"])
    assert status == 2 and "--darks" in capsys.readouterr().err
    assert not (tmp_path / "n.pth").exists()
