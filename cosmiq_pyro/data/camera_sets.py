"""The frames a camera's model is trained, validated and novelty-fitted on (`cosmiq_pyro.adapt`).

One owner for "which frames for this camera": `resolve_camera` turns an instrument name or spec
path into the camera's description, `simulated_sets` / `simulated_images` simulate its frames,
`dark_mix_sets` reads the user's own CR-free images plus dark frames (deepCR's ``mode='simulate'``
data, `dark_mix.DarkMixDataset`, as the deepCR ``train`` facade does), and `image_files` lists a
directory of them.  `cosmiq_pyro.inference.adaptation` builds everything through these.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import ConcatDataset, Dataset
from tqdm.auto import tqdm

from ..instruments import SPEC_DIR, Instrument, get_instrument
from .dark_mix import DarkMixDataset
from .simulated import SimulatedDataset

__all__ = ["Camera", "resolve_camera", "simulated_sets", "simulated_images", "dark_mix_sets", "image_files", "frame_width", "concat"]

@dataclass(frozen=True)
class Camera:
    """A camera as `adapt` uses it: its spec (`cosmiq_pyro.instruments.Instrument`) and where the
    spec came from (``"package"`` or the TOML file's absolute path)."""

    spec: Instrument
    source: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def read_noise_e(self) -> float:
        """The middle of the spec's read-noise range (e-): the novelty model's noise floor."""
        return float(self.spec.detector.read_noise_mid_e)

    def describe(self) -> dict:
        return {"name": self.name, "source": self.source}


def resolve_camera(instrument) -> Camera:
    """The camera named by ``instrument``: a shipped spec's name (``"ACS-WFC"``, ``"DECam"``...), a
    TOML spec path, or an `Instrument`.

    Raises
    ------
    FileNotFoundError
        A spec path that does not exist.
    ValueError
        An unknown name or an invalid spec (`cosmiq_pyro.instruments.get_instrument`).
    """
    if isinstance(instrument, Camera):
        return instrument
    spec = get_instrument(instrument)
    shipped = bool(spec.source) and os.path.dirname(os.path.abspath(spec.source)) == os.path.abspath(SPEC_DIR)
    return Camera(spec, "package" if shipped else (spec.source or "<Instrument object>"))


def _simulated(camera: Camera, n: int, seed: int, augment: bool, options: dict) -> SimulatedDataset:
    options = {k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items() if v is not None}
    return SimulatedDataset(n, seed=seed, augment=augment, instrument=camera.spec, **options)


def simulated_sets(camera: Camera, *, n_train: int, n_val: int, train_seed: int, val_seed: int,
                   star_core_weight: float | tuple[float, float] | None = None,
                   **options) -> tuple[Dataset, Dataset]:
    """Simulated training frames (random flips / rotations) and validation frames of ``camera``.

    ``options``: `SimulatedDataset` keywords (``size``, ``fields``, ``filters``, ``exptime_s``,
    ``label_rule``, ``cr_rate_multiplier``); a None value means the camera spec's.
    ``star_core_weight``: the training frames' likelihood weight on bright star cores
    (`SimulatedDataset`; None: unweighted); validation frames are never weighted.
    """
    return (_simulated(camera, n_train, train_seed, True, dict(options, star_core_weight=star_core_weight)),
            _simulated(camera, n_val, val_seed, False, options))


def simulated_images(camera: Camera, n: int, seed: int, progress: bool = False,
                     **options) -> tuple[list[np.ndarray], list[str], list[np.ndarray]]:
    """``n`` simulated frames of ``camera``: images (H, W) in electrons, their field types and
    their ignore masks (bool (H, W): what a real frame's DQ array would flag); ``progress``: a
    tqdm bar."""
    ds = _simulated(camera, n, seed, False, options)
    images, ignores = [], []
    for i in tqdm(range(n), desc="novelty frames", unit="frame", disable=not progress, leave=False):
        frame = ds.frame(i)
        images.append(frame.image)
        ignores.append(frame.ignore)
    return images, [str(f) for f in ds.meta["field"]], ignores


def frame_width(path) -> int:
    """Width W of the (W, W) or (k, W, W) array in the ``.npy`` file ``path`` (read lazily)."""
    return int(np.load(path, mmap_mode="r").shape[-1])


def image_files(directory, what: str) -> list[str]:
    """The ``.npy`` files of ``directory`` (sorted); at least two (one goes to validation)."""
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {str(path)!r} is not a directory of .npy files")
    files = sorted(str(p) for p in path.glob("*.npy"))
    if len(files) < 2:
        raise ValueError(f"{what} {str(path)!r} holds {len(files)} .npy file(s); at least 2 are needed "
                         "(the split keeps one or more for validation)")
    return files


def dark_mix_sets(images, darks, *, seed: int, n_mask: int, f_val: float) -> tuple[DarkMixDataset, DarkMixDataset]:
    """deepCR's 'simulate' training and validation parts: each CR-free image gets the cosmic rays
    of ``n_mask`` dark frames (`DarkMixDataset`; training frames redrawn at every read,
    validation frames fixed), images and darks split ``1 - f_val`` / ``f_val`` with ``seed``."""
    common = dict(n_mask=n_mask, f_val=f_val, seed=seed)
    return (DarkMixDataset(images, darks, part="train", resample=True, **common),
            DarkMixDataset(images, darks, part="val", resample=False, **common))


def concat(*parts: Dataset | None) -> Dataset:
    """The non-empty ``parts`` as one Dataset (the only one when there is one)."""
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        raise ValueError("no frames: give simulated frames (n_frames > 0) or images and darks")
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)
