"""CCD frames of a camera with cosmic rays and exact truth masks.

The simulator is what trains and tests the models, so every ingredient is physically
parameterised and every number says where it comes from.  A camera is its instrument spec
(`cosmiq_pyro.instruments`): ``[detector]`` gives the CCD (pixel scale and pitch, thickness,
gain, read noise, full well, dark current), ``[simulation]`` the rest (PSF, CR environment,
filters with their zeropoints and sky, defects, label rule, exposure times; see
`cosmiq_pyro.instruments.simulation`).  Shipped: ``ACS-WFC`` (the default; the constants this
simulator was built with, moved into its spec: frames for a given seed are bit-identical to
the ones before the move, ``tests/test_simulate_snapshot.py``), ``WFC3-UVIS`` and ``DECam``.
Every spec file cites its numbers.  The ACS sources, as keys used in the module docstrings:

* **IHB** -- ACS Instrument Handbook (hst-docs.stsci.edu/acsihb; current edition unless a
  cycle is named).  Table 3.1 (instrument characteristics), Sec. 4.3.1 (saturation and
  bleeding), Ch. 5 imaging considerations (WFC CR flux comparable to WFPC2's), Sec. 5.6.1
  (charge-diffusion kernels), Sec. 7.5 (~4-7 % of pixels hit by CRs in a one-orbit exposure).
* **IHB-C14** -- ACS Instrument Handbook for Cycle 14 (2005): Sec. 4.3 on cosmic rays,
  summarising ACS ISR 2002-07 (Riess 2002): 1.5-3 % of pixels affected in 1000 s, CR charge
  cut-off at ~500 e- and median ~1000 e-, CR footprints peaked at 4-5 pixels; Sec. 5.6.6:
  residual aberrations, focus variations, WFC CCD thickness 12-17 um.
* **ACS-IDT** -- ACS IDT "Zeropoint & Sky Background" page (Sirianni, 2001): WFC sky rates
  for low / average / high zodiacal light (Earth shine = shadow).
* **S05** -- Sirianni et al. 2005, PASP 117, 1049: WFC AB zeropoints and pivot wavelengths.
* **PDG** -- Review of Particle Physics, "Passage of particles through matter": Landau-
  Vavilov-Bichsel most-probable energy loss in thin silicon; "Cosmic rays" 29.3: muons at
  the ground.
* `labels`, `hot_pixels` and `cte` cite their own sources: drizzlepac's ``drizCR.py`` and
  parameter files (**DRZ**), the ACS DQ-flag page (**ACS-DQ**), IHB-C14 Table 4.3, the ACS
  Data Handbook (**DHB**), Massey et al. 2010/2014 via arCTIc (**M10**), IHB 2.6.

A frame is built as

    before    = PSF * (stars + galaxies) + sky + dark + warm/hot pixels   (expected electrons)
    charge    = Poisson(before + cr_0)                       (CR charge is Poisson too)
    charge    = bleed(charge, full well)                     (vertical blooming)
    charge    = T(charge)                                    (read-out: CTE trails, as an _flc)
    image     = gain * round((charge + N(0, read_noise^2)) / gain)  (ADC, back in electrons)

with ``noiseless = T(before)`` and ``cr_image = T(before + cr_0) - T(before)``, and the truth
``mask`` is made from ``cr_image`` and ``noiseless`` by AstroDrizzle's driz_cr rule with its
default parameters (``label_rule="drizcr"``, `labels`), as real ACS/WFC and WFC3/UVIS CR masks
and so deepCR's training labels are, or by ``label_rule="sigma"``:
``cr_image > mask_threshold_sigma * sqrt(noiseless + read_noise^2)`` (DECam's rule, k chosen by
experiment: docs/simulation.md).  Warm/hot pixels, bad columns and CTE trails (`DEFECTS`) can
each be switched off with ``defects=``.

The two rules, measured by ``benchmarks/label_rules.py`` on 30 frames of 256 x 256 (10 per
field, F435W/F606W/F814W, 100-1200 s): driz_cr labels 0.64 % of valid pixels, the 1-sigma
rule 1.10 %; driz_cr drops 298 faint halo pixels per frame (42 % of the 1-sigma pixels,
median CR charge 2.0 sigma), keeps 84 % of the CR charge (1-sigma: 96 %) and misses 8.6 %
of the 1-sigma CR groups entirely (GC 15.9 %: the gradient term on stars).

Speed: PSFs (GalSim `OpticalPSF` or `Moffat`) and a library of galaxy stamps (GalSim `Sersic`) are
rendered once per process and cached; each frame is then assembled with numpy: point
sources go through one FFT convolution per sub-pixel phase group, galaxies are placed
as stamps and convolved with the PSF by one more FFT.

Modules (one concern each; everything public is re-exported here):

* `camera` -- `resolve_instrument` (name, spec path or Instrument) and `DEFAULT_INSTRUMENT`;
* `detector` -- bad columns, full well and bleeding, Poisson and read noise, the gain ADC;
* `hot_pixels` -- warm and hot pixels, flagged (``ignore``) or not (label 0);
* `cte` -- parallel CTE trails of the read-out (what an _flc keeps of them);
* `filters` -- photometry of a filter of the spec (magnitudes to electrons, colours);
* `optics` -- the spec's PSF per filter and seeing (GalSim, cached) and the FFT rendering;
* `galaxies` -- the cached library of GalSim galaxy stamps and their placement;
* `scenes` -- the EX / GC / GAL source fields (`FIELDS`);
* `cosmic_rays` -- CR rate (space or ground), tracks, Landau deposition, diffusion, worms
  and spots;
* `labels` -- the CR truth rules: driz_cr (`drizcr_mask`) and 1-sigma (`sigma_mask`);
* `validation` -- argument checks shared by the public functions (`check_size`);
* `frames` -- `simulate_frame` and `SimulatedFrame`;
* `stars` -- a frame's bright stars: `bright_star_peaks` and the training weights on their
  cores (`star_core_weights`);
* `datasets` -- `make_dataset`, `SimulatedSet`, `frame_seed`, `frame_spec`;
* `pair_files` -- `write_pairs` (deepCR's 'pair' file layout).
"""
from __future__ import annotations

# constants are re-exported as attributes (tests and notebooks read them), not in __all__
from .camera import DEFAULT_INSTRUMENT, resolve_instrument
from .cosmic_rays import (  # noqa: F401
    LANDAU_SCALE, SCIPY_LANDAU_PEAK, SI_PAIR_ENERGY_EV, cr_rate_per_cm2_s, expected_cr_count,
)
from .datasets import HELD_OUT_SEED, SimulatedSet, frame_seed, frame_spec, make_dataset
from .cte import (  # noqa: F401
    FLC_TRAIL_RESIDUAL, TRAP_RELEASE_TRANSFERS, TRAP_SPECIES_SHARE, WELL_FILL_POWER, cte_trail,
    trap_density,
)
from .frames import DEFECTS, SimulatedFrame, check_defects, simulate_frame
from .hot_pixels import (  # noqa: F401
    DQ_WARM_THRESHOLD_E_PER_S, HOT_PIXEL_CREATION_PER_DAY, HOT_PIXEL_THRESHOLDS_E_PER_S,
    SUPERDARK_LAG_DAYS_MAX, hot_pixel_rate_quantile,
)
from .labels import (  # noqa: F401
    DRIZ_CR_GROW, DRIZ_CR_SCALE, DRIZ_CR_SNR, LABEL_RULES, check_label_rule, cr_labels, drizcr_mask,
    drizcr_noise_e, model_derivative, sigma_mask,
)
from .galaxies import GALAXY_LIBRARY_SEED, GALAXY_LIBRARY_SIZE, SERSIC_INDICES  # noqa: F401
from .optics import PSF_PHASES, PSF_STAMP, moffat_draw, psf_key  # noqa: F401
from .pair_files import write_pairs
from .scenes import FIELDS
from .stars import STAR_CORE_RADIUS_PX, STAR_MIN_SNR, bright_star_peaks, star_core_weights  # noqa: F401
from .validation import check_size

__all__ = [
    "FIELDS", "SimulatedFrame", "SimulatedSet", "simulate_frame", "make_dataset",
    "frame_seed", "frame_spec", "HELD_OUT_SEED", "write_pairs", "cr_rate_per_cm2_s", "expected_cr_count",
    "check_size", "LABEL_RULES", "check_label_rule", "cr_labels", "drizcr_mask", "sigma_mask",
    "drizcr_noise_e", "model_derivative", "DEFECTS", "check_defects", "cte_trail",
    "hot_pixel_rate_quantile", "DEFAULT_INSTRUMENT", "resolve_instrument", "bright_star_peaks",
    "star_core_weights",
]
