"""HST ACS/WFC-like CCD frames with cosmic rays and exact truth masks.

The simulator is what trains and tests the models, so every ingredient is physically
parameterised and every number says where it comes from.  Handbook references:

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
  Vavilov-Bichsel most-probable energy loss in thin silicon.

A frame is built as

    noiseless = PSF * (stars + galaxies) + sky + dark            (expected electrons)
    charge    = Poisson(noiseless + cr_image)                    (CR charge is Poisson too)
    charge    = bleed(charge, full well)                         (vertical blooming)
    image     = gain * round((charge + N(0, read_noise^2)) / gain)  (ADC, back in electrons)

and the truth ``mask`` marks ``cr_image > mask_threshold_sigma * sqrt(noiseless + read_noise^2)``.

Speed: PSFs (GalSim `OpticalPSF`) and a library of galaxy stamps (GalSim `Sersic`) are
rendered once per process and cached; each frame is then assembled with numpy: point
sources go through one FFT convolution per sub-pixel phase group, galaxies are placed
as stamps and convolved with the PSF by one more FFT.
"""
from __future__ import annotations

import functools
import math
import numbers
import os
import tempfile
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path

import galsim
import numpy as np
import pandas as pd
import scipy.fft
from scipy import stats
from scipy.special import ndtr

__all__ = [
    "FIELDS", "FILTERS", "SimulatedFrame", "SimulatedSet", "simulate_frame", "make_dataset",
    "frame_seed", "frame_spec", "write_pairs", "cr_rate_per_cm2_s", "expected_cr_count",
]

# --------------------------------------------------------------------------- detector

PIXEL_SCALE_ARCSEC = 0.05  # IHB Table 3.1: ~0.05 x 0.05 arcsec^2 per WFC pixel
PIXEL_PITCH_UM = 15.0  # IHB Table 3.1: WFC pixels are 15 x 15 um^2
GAIN_E_PER_ADU = 2.0  # IHB Table 3.1: gains 0.5, 1.0, 1.4, 2.0 e-/DN; GAIN=2 is the default
READ_NOISE_RANGE_E = (3.75, 5.65)  # IHB Table 3.1: 3.75-5.65 e- over amplifiers
DARK_E_PER_S = 0.0161  # IHB Table 3.1: WFC dark current, e-/s/pixel (Cycle 32)
SATURATION_RANGE_E = (72_000.0, 82_000.0)  # IHB 4.3.1: ~77,400 e-, 72,000-82,000 e-
# ACS ISR 2002-06 (Riess, Mutchler & Van Orsow): new WFC hot pixels accumulate toward ~2 %
# of the detector; we draw 0.1-1 % per frame, dark rates log-uniform in HOT_PIXEL_RATE_E_PER_S.
HOT_PIXEL_FRACTION_RANGE = (0.001, 0.01)
HOT_PIXEL_RATE_E_PER_S = (0.05, 1.0)
BAD_COLUMNS_PER_256 = 1.0  # mean number of bad-column segments per 256 columns (assumed)

# --------------------------------------------------------------------------- optics

HST_DIAMETER_M = 2.4  # HST primary mirror
HST_OBSCURATION = 0.33  # secondary-mirror linear obscuration of the HST pupil
HST_STRUT_THICKNESS = 0.02  # spider vanes, fraction of the pupil diameter (approximate)
# IHB-C14 5.6.6: residual aberrations 1/20 wave rms at 5500 A (excluding defocus); we split
# them evenly over astigmatism, coma and spherical, and add the 1/18 wave rms of focus
# variation it quotes.
ABERRATION_RMS_WAVES_AT_550NM = 0.05
DEFOCUS_RMS_WAVES_AT_550NM = 1.0 / 18.0
JITTER_SIGMA_ARCSEC = 0.005  # pointing jitter of a few mas rms (assumed 5 mas)
PSF_STAMP = 65  # odd, so a profile centred on the stamp is centred on a pixel
PSF_PHASES = 4  # sub-pixel phases per axis for point sources (max error 1/8 pixel)


@dataclass(frozen=True)
class FilterSpec:
    """What the simulator knows about one ACS/WFC filter.

    Attributes
    ----------
    pivot_nm : float
        Pivot wavelength (S05, rounded to 1 nm); the PSF is drawn monochromatic here.
    zeropoint_ab : float
        AB magnitude giving 1 e-/s (S05, WFC).
    sky_e_per_s : (float, float)
        Sky rate range per pixel, low to high zodiacal light (ACS-IDT table).
    diffusion_sigma_px : float
        Gaussian sigma of CCD charge diffusion.  At F435W it reproduces the IHB 5.6.1 WFC
        kernel at 4000 A (centre 0.40, sides 0.11, corners 0.04 -> sigma = 0.56 px); the IHB
        says diffusion weakens to the red, which we model as sigma proportional to
        lambda^(-1/2) (an assumption, not a handbook table).
    colour_mag : (float, float)
        Mean and spread of (m_filter - m_F606W) for stars and galaxies (rough, assumed).
    """

    pivot_nm: float
    zeropoint_ab: float
    sky_e_per_s: tuple
    diffusion_sigma_px: float
    colour_mag: tuple


def _diffusion_sigma(pivot_nm):
    return 0.56 * math.sqrt(432.0 / pivot_nm)


FILTERS = {
    "F435W": FilterSpec(432.0, 25.673, (0.0108, 0.0360), _diffusion_sigma(432.0), (0.7, 0.4)),
    "F606W": FilterSpec(592.0, 26.486, (0.0510, 0.1701), _diffusion_sigma(592.0), (0.0, 0.0)),
    "F814W": FilterSpec(806.0, 25.937, (0.0453, 0.1511), _diffusion_sigma(806.0), (-0.5, 0.3)),
}

FIELDS = ("EX", "GC", "GAL")

# --------------------------------------------------------------------------- cosmic rays

# HST Data Handbook, WF/PC-1 Sec. 46.5: ~1.7 CR events per second per 800x800 CCD of 15 um
# pixels (1.44 cm^2) -> 1.18 cm^-2 s^-1.  WFPC2 IHB 4.9: WFPC2's event rate is similar;
# ACS IHB Ch. 5: the WFC cosmic-ray flux is comparable to WFPC2's.  Cross-check against
# IHB-C14: 1.2 cm^-2 s^-1 x 0.147 cm^2 x 1000 s = 177 CRs per 256^2 frame; at 5.5-11 pixels
# each that is the handbook's 1.5-3 % of pixels (and ~4-7 % per orbit, IHB 7.5).
CR_RATE_PER_CM2_S = 1.2
CCD_THICKNESS_UM = (12.0, 17.0)  # IHB-C14 5.6.6: WFC CCDs are 12-17 um thick (per frame)
SI_PAIR_ENERGY_EV = 3.6  # mean energy per electron-hole pair in silicon
# A minimum-ionising particle crossing 12-17 um of silicon at the isotropic angles below
# leaves a median of 1.2-1.7 ke- (`_landau_mpv_e`), while IHB-C14 measured a median of
# ~1000 e- on the WFC.  We scale the deposit by 0.75 to match the measurement, attributing
# the shortfall to charge lost from the field-free layer of the thinned CCD (assumption).
CR_COLLECTION_EFFICIENCY = 0.75
# Charge diffusion of CR charge: generated at the back surface it spreads like blue light
# (sigma of the 4000 A kernel, 0.56 px); generated next to the gates it hardly spreads.
CR_DIFFUSION_SIGMA_PX = (0.56, 0.15)  # (back surface, front surface)
CR_MAX_LENGTH_PX = 200.0  # cap on the projected length of grazing tracks
CR_WORM_FRACTION = 0.05  # curly tracks of low-energy electrons (assumed share)
CR_SPOT_FRACTION = 0.03  # single-pixel hits (assumed share)


def cr_rate_per_cm2_s():
    """Cosmic-ray arrival rate used by the simulator, in CRs cm^-2 s^-1 (see module notes)."""
    return CR_RATE_PER_CM2_S


def expected_cr_count(size, exptime_s):
    r"""Mean number of CRs hitting a ``size`` x ``size`` frame in ``exptime_s`` seconds.

    .. math:: \bar N = R \, (N_{px} \, p)^2 \, t,

    with R = 1.2 cm^-2 s^-1 and pixel pitch p = 15 um.
    """
    side_cm = size * PIXEL_PITCH_UM * 1e-4
    return CR_RATE_PER_CM2_S * side_cm**2 * float(exptime_s)


# --------------------------------------------------------------------------- results


@dataclass
class SimulatedFrame:
    """One simulated frame.  All images are ``(size, size)``; charges in electrons.

    Attributes
    ----------
    image : numpy.ndarray of float32
        What the detector reads (sources + sky + dark + CRs, noise, saturation, ADC).
    mask : numpy.ndarray of bool
        CR truth: ``cr_image > mask_threshold_sigma * sqrt(noiseless + read_noise_e**2)``.
    ignore : numpy.ndarray of bool
        Hot pixels, bad columns, saturated pixels and their bleed trails.
    cr_image : numpy.ndarray of float32
        The CR charge alone (expected electrons, before Poisson noise).
    noiseless : numpy.ndarray of float32
        Sources + sky + dark current (incl. hot pixels and bad columns), no noise, no CRs.
    sky_e : float
        Sky level per pixel, electrons.
    meta : dict
        field, filter, exptime_s, seed, n_stars, n_galaxies, n_crs, read_noise_e,
        gain_e_per_adu, full_well_e, ccd_thickness_um, mask_threshold_sigma.
    """

    image: np.ndarray
    mask: np.ndarray
    ignore: np.ndarray
    cr_image: np.ndarray
    noiseless: np.ndarray
    sky_e: float
    meta: dict = dataclass_field(default_factory=dict)


@dataclass
class SimulatedSet:
    """A stack of simulated frames, as deepCR's ``train(mode='pair')`` takes them.

    Attributes
    ----------
    image : numpy.ndarray, float32, shape (n, size, size)
    mask, ignore : numpy.ndarray, bool, shape (n, size, size)
    sky : numpy.ndarray, float32, shape (n,)
        Sky level of each frame in electrons (deepCR's ``sky`` for sky augmentation).
    meta : pandas.DataFrame
        One row per frame: the `SimulatedFrame.meta` entries plus ``index``.
    """

    image: np.ndarray
    mask: np.ndarray
    ignore: np.ndarray
    sky: np.ndarray
    meta: pd.DataFrame

    def __len__(self):
        return self.image.shape[0]


# --------------------------------------------------------------------------- validation


def _check_size(size):
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise TypeError(f"size must be an int >= 16, got {type(size).__name__} {size!r}")
    if size < 16:
        raise ValueError(f"size must be an int >= 16, got {size}")
    return int(size)


def _check_exptime(exptime_s):
    if isinstance(exptime_s, bool) or not isinstance(exptime_s, numbers.Real):
        raise TypeError(f"exptime_s must be a positive number of seconds, got {exptime_s!r}")
    if not math.isfinite(exptime_s) or exptime_s <= 0:
        raise ValueError(f"exptime_s must be a positive finite number of seconds, got {exptime_s}")
    return float(exptime_s)


def _check_seed(seed, name="seed"):
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative int, got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative int, got {seed}")
    return int(seed)


def _check_field(field, allow_mixed=True):
    if isinstance(field, str):
        if allow_mixed and field.lower() == "mixed":
            return "mixed"
        if field.upper() in FIELDS:
            return field.upper()
    allowed = FIELDS + (("mixed",) if allow_mixed else ())
    raise ValueError(f"field must be one of {allowed}, got {field!r}")


def _check_filter(filter):
    if isinstance(filter, str) and filter.upper() in FILTERS:
        return filter.upper()
    raise ValueError(f"filter must be one of {tuple(FILTERS)}, got {filter!r}")


# --------------------------------------------------------------------------- cached renders


@functools.lru_cache(maxsize=None)
def _psf_stamps(filter):
    """Pixel-integrated PSF at PSF_PHASES^2 sub-pixel offsets, plus the unintegrated PSF.

    Returns
    -------
    phased : ndarray, shape (P, P, S, S)
        ``phased[jy, jx]`` is the PSF of a point source offset by ((jx+0.5)/P - 0.5,
        (jy+0.5)/P - 0.5) pixels from the stamp centre, integrated over pixels.
    sampled : ndarray, shape (S, S)
        The PSF sampled at pixel centres, for convolving images that are already
        pixel-integrated (galaxies).
    """
    spec = FILTERS[filter]
    waves = 550.0 / spec.pivot_nm  # aberrations are quoted in waves at 5500 A
    each = ABERRATION_RMS_WAVES_AT_550NM / math.sqrt(5.0) * waves
    optics = galsim.OpticalPSF(
        lam=spec.pivot_nm, diam=HST_DIAMETER_M, obscuration=HST_OBSCURATION, nstruts=4,
        strut_thick=HST_STRUT_THICKNESS, strut_angle=45.0 * galsim.degrees,
        defocus=DEFOCUS_RMS_WAVES_AT_550NM * waves, astig1=each, astig2=-each, coma1=each,
        coma2=-each, spher=each, scale_unit=galsim.arcsec,
    )
    blur_arcsec = math.hypot(spec.diffusion_sigma_px * PIXEL_SCALE_ARCSEC, JITTER_SIGMA_ARCSEC)
    psf = galsim.Convolve(optics, galsim.Gaussian(sigma=blur_arcsec))
    P, S = PSF_PHASES, PSF_STAMP
    phased = np.empty((P, P, S, S))
    for jy in range(P):
        for jx in range(P):
            offset = ((jx + 0.5) / P - 0.5, (jy + 0.5) / P - 0.5)
            phased[jy, jx] = psf.drawImage(nx=S, ny=S, scale=PIXEL_SCALE_ARCSEC,
                                           offset=offset).array
    sampled = psf.drawImage(nx=S, ny=S, scale=PIXEL_SCALE_ARCSEC, method="no_pixel").array
    return phased, sampled


@functools.lru_cache(maxsize=3)
def _psf_transforms(filter, shape):
    """FFTs of the PSF stamps embedded (centre at [0, 0]) in a grid of ``shape``.

    Returns ``(phased_hat (P, P, Ny, Nx//2+1), sampled_hat (Ny, Nx//2+1))``, complex64.
    """
    phased, sampled = _psf_stamps(filter)
    c = PSF_STAMP // 2

    def embed(stamp):
        grid = np.zeros(shape)
        grid[:PSF_STAMP, :PSF_STAMP] = stamp
        grid = np.roll(grid, (-c, -c), axis=(0, 1))
        return scipy.fft.rfft2(grid).astype(np.complex64)

    phased_hat = np.stack([np.stack([embed(s) for s in row]) for row in phased])
    return phased_hat, embed(sampled)


@dataclass(frozen=True)
class _GalaxyLibrary:
    stamps: tuple  # unit-flux, pixel-integrated intrinsic images, odd sizes
    log_re: np.ndarray  # ln half-light radius in pixels, sorted ascending


GALAXY_LIBRARY_SIZE = 240
GALAXY_LIBRARY_SEED = 20_250_601  # the library is part of the simulator, not of a frame
SERSIC_INDICES = (0.8, 1.0, 1.5, 2.5, 4.0)  # few distinct n: GalSim caches one table per n


@functools.lru_cache(maxsize=None)
def _galaxy_library():
    """Intrinsic (PSF-free, pixel-integrated) galaxy stamps drawn once with GalSim.

    Sersic profiles with n in `SERSIC_INDICES`, half-light radius log-uniform in
    0.8-25 px, axis ratio 0.2-1, random position angle and sub-pixel centre; one in five is
    a clumpy disk (exponential disk plus 2-5 Gaussian knots carrying 15-45 % of the light),
    like the irregular galaxies of deep fields.  Each is drawn 4x oversampled without pixel
    convolution and summed 4x4 (pixel integration), which avoids GalSim's huge FFTs for
    small cuspy profiles.
    """
    rng = np.random.default_rng(GALAXY_LIBRARY_SEED)
    over = 4
    entries = []
    for _ in range(GALAXY_LIBRARY_SIZE):
        re_px = math.exp(rng.uniform(math.log(0.8), math.log(25.0)))
        n = float(rng.choice(SERSIC_INDICES))
        clumpy = rng.random() < 0.2
        re_arcsec = re_px * PIXEL_SCALE_ARCSEC
        shear = dict(q=rng.uniform(0.2, 1.0), beta=rng.uniform(0, 180) * galsim.degrees)
        if clumpy:
            n = 1.0
            knots_share = rng.uniform(0.15, 0.45)
            parts = [galsim.Sersic(n=1.0, half_light_radius=re_arcsec).shear(**shear)
                     .withFlux(1.0 - knots_share)]
            n_knots = int(rng.integers(2, 6))
            for w in rng.dirichlet(np.ones(n_knots)) * knots_share:
                sigma = rng.uniform(0.5, 1.5) * PIXEL_SCALE_ARCSEC
                dx, dy = rng.normal(0.0, 0.7 * re_arcsec, 2)
                parts.append(galsim.Gaussian(sigma=sigma, flux=w).shift(dx, dy))
            profile = galsim.Add(parts)
        else:
            profile = galsim.Sersic(n=n, half_light_radius=re_arcsec).shear(**shear)
        half = int(min(64, math.ceil(re_px * (3.0 + n))))
        S = 2 * half + 1
        offset = rng.uniform(-0.5, 0.5, 2) * over
        fine = profile.drawImage(nx=S * over, ny=S * over, scale=PIXEL_SCALE_ARCSEC / over,
                                 method="no_pixel", offset=tuple(offset)).array
        stamp = fine.reshape(S, over, S, over).sum(axis=(1, 3))
        stamp = np.clip(stamp, 0.0, None)
        entries.append((math.log(re_px), stamp / stamp.sum()))
    entries.sort(key=lambda e: e[0])
    return _GalaxyLibrary(stamps=tuple(e[1] for e in entries),
                          log_re=np.array([e[0] for e in entries]))


# --------------------------------------------------------------------------- scene


@dataclass
class _Scene:
    """Sources on the padded grid (pad = PSF_STAMP // 2 on every side)."""

    shape: tuple  # (Ny, Nx) of the padded grid
    pad: int  # frame pixels are [pad, pad + size) on both axes
    size: int
    star_xy: list = dataclass_field(default_factory=list)  # arrays (n, 2): x, y (padded px)
    star_e: list = dataclass_field(default_factory=list)  # arrays (n,): electrons
    extended: np.ndarray | None = None  # (Ny, Nx) pixel-integrated intrinsic light, e-
    galaxy_xy: list = dataclass_field(default_factory=list)  # arrays (n, 2) of stamp centres
    n_hosts: int = 0  # resolved host galaxies (GAL fields)

    def add_stars(self, xy, electrons):
        self.star_xy.append(np.asarray(xy, float).reshape(-1, 2))
        self.star_e.append(np.asarray(electrons, float).ravel())

    def ext(self):
        if self.extended is None:
            self.extended = np.zeros(self.shape)
        return self.extended


def _mag_to_e(mag, filter, exptime_s):
    """Electrons from an AB magnitude: ``t * 10**(-0.4 (m - ZP))`` (S05 zeropoints)."""
    return exptime_s * 10.0 ** (-0.4 * (np.asarray(mag) - FILTERS[filter].zeropoint_ab))


def _colour(filter, n, rng):
    mean, spread = FILTERS[filter].colour_mag
    return mean + spread * rng.standard_normal(n)


def _power_law_mags(n, m_bright, m_faint, slope, rng):
    """Magnitudes with dN/dm proportional to 10**(slope m) on [m_bright, m_faint]."""
    lo, hi = 10.0 ** (slope * m_bright), 10.0 ** (slope * m_faint)
    return np.log10(lo + rng.random(n) * (hi - lo)) / slope


def _area_factor(shape):
    """Padded-grid area in units of a 256 x 256 frame (densities are quoted per 256^2)."""
    return shape[0] * shape[1] / 256.0**2


def _count_inside(xy, pad, size):
    """How many padded-grid positions ``xy`` (n, 2) fall on the ``size`` x ``size`` frame."""
    lo, hi = pad - 0.5, pad + size - 0.5
    inside = (xy[:, 0] >= lo) & (xy[:, 0] < hi) & (xy[:, 1] >= lo) & (xy[:, 1] < hi)
    return int(inside.sum())


def _place_galaxies(scene, n, mags, filter, exptime_s, rng, xy=None, log_re=None, count=True):
    """Add ``n`` library galaxies of F606W magnitudes ``mags`` to the extended light.

    Size follows magnitude: ln r_e[px] = ln(6) - 0.23 (m - 24) + N(0, 0.35) (bright galaxies
    are bigger; r_e ~ 0.3" at m = 24, a rough deep-field size-magnitude relation), unless
    ``log_re`` is given.  ``count=False`` places stamps that are not galaxies (star-forming
    clumps) and leaves them out of ``n_galaxies``.
    """
    if n == 0:
        return
    lib = _galaxy_library()
    ny, nx = scene.shape
    if xy is None:
        xy = rng.uniform((0, 0), (nx, ny), (n, 2))
    if log_re is None:
        log_re = math.log(6.0) - 0.23 * (mags - 24.0) + 0.35 * rng.standard_normal(n)
    flux = _mag_to_e(mags + _colour(filter, n, rng), filter, exptime_s)
    ext = scene.ext()
    if count:
        scene.galaxy_xy.append(np.asarray(xy, float).reshape(-1, 2))
    nearest = np.searchsorted(lib.log_re, log_re).clip(0, len(lib.stamps) - 1)
    picks = (nearest + rng.integers(-2, 3, n)).clip(0, len(lib.stamps) - 1)
    turns, flips = rng.integers(0, 4, n), rng.random(n) < 0.5
    for (x, y), f, k, turn, flip in zip(xy, flux, picks, turns, flips):
        stamp = np.rot90(lib.stamps[k], turn)
        if flip:
            stamp = stamp[:, ::-1]
        h = stamp.shape[0] // 2
        cx, cy = int(round(x)), int(round(y))
        y0, y1, x0, x1 = cy - h, cy + h + 1, cx - h, cx + h + 1
        sy0, sx0 = max(0, -y0), max(0, -x0)
        sy1, sx1 = stamp.shape[0] - max(0, y1 - ny), stamp.shape[1] - max(0, x1 - nx)
        if sy1 <= sy0 or sx1 <= sx0:
            continue
        ext[max(0, y0):min(ny, y1), max(0, x0):min(nx, x1)] += f * stamp[sy0:sy1, sx0:sx1]


def _field_galaxies(scene, density_per_256, filter, exptime_s, rng, m_range=(19.0, 28.5)):
    """Background galaxies: Poisson count, number counts dN/dm ~ 10**(0.3 m)."""
    n = rng.poisson(density_per_256 * _area_factor(scene.shape))
    mags = _power_law_mags(n, *m_range, 0.3, rng)
    xy = rng.uniform((0, 0), (scene.shape[1], scene.shape[0]), (n, 2))
    _place_galaxies(scene, n, mags, filter, exptime_s, rng, xy=xy)


def _field_stars(scene, mean_per_256, filter, exptime_s, rng, m_range=(18.0, 27.0)):
    """Foreground Galactic stars: Poisson count, flat in magnitude."""
    n = rng.poisson(mean_per_256 * _area_factor(scene.shape))
    xy = rng.uniform((0, 0), (scene.shape[1], scene.shape[0]), (n, 2))
    mags = rng.uniform(*m_range, n) + _colour(filter, n, rng)
    scene.add_stars(xy, _mag_to_e(mags, filter, exptime_s))


def _scene_ex(scene, filter, exptime_s, rng):
    """Sparse extragalactic field: 300-900 galaxies per arcmin^2 to m = 28.5, ~2 stars.

    A 256^2 WFC frame is 12.8" on a side (0.0455 arcmin^2), so 14-41 galaxies on average;
    the Hubble Ultra Deep Field holds ~10^4 galaxies in 11 arcmin^2.
    """
    density = rng.uniform(300.0, 900.0) * (256 * PIXEL_SCALE_ARCSEC / 60.0) ** 2
    _field_galaxies(scene, density, filter, exptime_s, rng)
    _field_stars(scene, 2.0, filter, exptime_s, rng)


def _sample_density(weight, n, rng):
    """``n`` positions (x, y) on the grid drawn with probability proportional to ``weight``
    (inverse-CDF sampling of the flattened map, uniform within the chosen pixel)."""
    cdf = np.cumsum(weight, axis=None)
    flat = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right").clip(0, cdf.size - 1)
    y, x = np.divmod(flat, weight.shape[1])
    return np.column_stack([x, y]) + rng.uniform(-0.5, 0.5, (n, 2))


def _scene_gc(scene, filter, exptime_s, rng):
    """Crowded stellar field: part of a globular cluster.

    2000-6000 stars per 256^2 of frame on average, spatially following a Plummer profile
    Sigma ~ (1 + r^2/a^2)^-2 with core a = 80-400 px centred somewhere within a frame width,
    magnitudes from a power-law luminosity function dN/dm ~ 10**(alpha m), alpha 0.2-0.35,
    from the giant branch (m = 16.5-18.5 in F606W) to m = 28.5, plus the unresolved light of
    the fainter stars (a faint glow: 22-25 mag/arcsec^2 at the profile's peak; most of a
    cluster's light is in its resolved stars and their PSF wings).
    """
    ny, nx = scene.shape
    pad = scene.pad
    a = rng.uniform(80.0, 400.0)
    cx, cy = rng.uniform(-0.5, 1.5, 2) * (nx, ny)
    yy, xx = np.ogrid[0:ny, 0:nx]
    profile = 1.0 / (1.0 + ((xx - cx) ** 2 + (yy - cy) ** 2) / a**2)
    profile *= profile
    frame = profile[pad:pad + scene.size, pad:pad + scene.size]
    in_frame = rng.uniform(2000.0, 6000.0) * frame.size / 256.0**2
    n = rng.poisson(in_frame * profile.sum() / frame.sum())
    xy = _sample_density(profile, n, rng)
    mags = _power_law_mags(n, rng.uniform(16.5, 18.5), 28.5, rng.uniform(0.2, 0.35), rng)
    scene.add_stars(xy, _mag_to_e(mags + _colour(filter, n, rng), filter, exptime_s))
    mu_peak = rng.uniform(22.0, 25.0)
    scene.ext()[:] += profile / profile.max() * _surface_e(mu_peak, filter, exptime_s)
    _field_galaxies(scene, 3.0, filter, exptime_s, rng)


def _surface_e(mu_mag_arcsec2, filter, exptime_s):
    """Electrons per pixel of a surface brightness mu (AB mag/arcsec^2, F606W-referenced)."""
    return float(_mag_to_e(mu_mag_arcsec2, filter, exptime_s)) * PIXEL_SCALE_ARCSEC**2


def _scene_gal(scene, filter, exptime_s, rng):
    """Part of a resolved nearby galaxy.

    A bright Sersic body (n in 1-4, r_e 3-30", drawn with GalSim) whose surface brightness at
    the frame centre is 18-22.5 mag/arcsec^2 (bulges to outer disks); disks (n <= 2.5) get
    2-4 flocculent logarithmic spiral arms and dust lanes along the arms' inner edges,
    spheroids a straight dust lane; patchy dust everywhere.  Star-forming clumps and resolved
    bright stars are scattered following the (arm-weighted) light: 30-150 clusters (compact
    stamps or point sources, m 20-26, dimmed by the local dust) and 300-1500 stars
    (m 22-28.5).
    """
    ny, nx = scene.shape
    n_sersic = float(rng.choice((1.0, 1.5, 2.5, 4.0)))
    re_px = rng.uniform(60.0, 600.0)
    q, pa = rng.uniform(0.3, 1.0), rng.uniform(0.0, np.pi)
    centre = rng.uniform(-0.6, 0.6, 2) * (nx, ny) * rng.uniform(0.2, 2.0)
    body = galsim.Sersic(n=n_sersic, half_light_radius=re_px * PIXEL_SCALE_ARCSEC)
    body = body.shear(q=q, beta=pa * galsim.radians)
    light = body.drawImage(nx=nx, ny=ny, scale=PIXEL_SCALE_ARCSEC, method="no_pixel",
                           offset=tuple(centre)).array.astype(float)
    # deprojected polar coordinates around the body's centre
    yy, xx = np.ogrid[0:ny, 0:nx]
    dx = (xx - ((nx - 1) / 2 + centre[0])).astype(np.float32)  # float32: 2-3x faster maps
    dy = (yy - ((ny - 1) / 2 + centre[1])).astype(np.float32)
    u = dx * math.cos(pa) + dy * math.sin(pa)  # (ny, nx) by broadcasting
    v = (-dx * math.sin(pa) + dy * math.cos(pa)) / q
    tau = rng.uniform(0.0, 0.6) * _smooth_noise(scene.shape, rng.uniform(6.0, 20.0), rng)
    arms = 1.0
    if n_sersic <= 2.5:
        m_arms = int(rng.integers(2, 5))
        pitch = math.radians(rng.uniform(12.0, 30.0))
        r = np.hypot(u, v) + 1.0
        phase = m_arms * (np.arctan2(v, u) - np.log(r / re_px) / math.tan(pitch))
        phase += rng.uniform(0, 2 * np.pi)
        crest = 0.5 * (1.0 + np.cos(phase))  # 1 on an arm's crest, 0 between arms
        crest2 = crest * crest
        contrast = rng.uniform(0.3, 0.8)
        flocculence = 0.4 + 0.75 * _smooth_noise(scene.shape, rng.uniform(8.0, 25.0), rng)
        arms = ((1.0 - contrast) + 3.0 * contrast * crest2 * crest2) * flocculence
        # dust along the arms' inner edges: a narrow crest shifted by 0.6 rad of phase
        lane = 0.5 * (1.0 + np.cos(phase - 0.6))
        lane2 = lane * lane
        lane8 = lane2 * lane2
        lane8 *= lane8
        tau += rng.uniform(0.3, 1.5) * lane8 * lane2
    else:
        width = rng.uniform(5.0, 25.0)
        tilt = rng.uniform(-0.3, 0.3)
        tau += rng.uniform(0.5, 2.0) * np.exp(-0.5 * ((v * q - tilt * u) / width) ** 2)
    light *= arms * np.exp(-tau)
    centre_pix = light[ny // 2, nx // 2]
    target = _surface_e(rng.uniform(18.0, 22.5), filter, exptime_s)
    light *= target / max(centre_pix, 1e-12 * light.max(), 1e-300)
    scene.ext()[:] += light
    weight = light * arms + 1e-6 * light.max()
    n_clusters = int(rng.integers(30, 151) * _area_factor(scene.shape))
    xy = _sample_density(weight, n_clusters, rng)
    mags = rng.uniform(20.0, 26.0, n_clusters)
    compact = rng.random(n_clusters) < 0.5
    iy = np.rint(xy[:, 1]).astype(int).clip(0, ny - 1)
    ix = np.rint(xy[:, 0]).astype(int).clip(0, nx - 1)
    mags = mags + 2.5 / math.log(10.0) * tau[iy, ix]  # dimmed by the dust in front
    n_compact = int(compact.sum())
    _place_galaxies(scene, n_compact, mags[compact], filter, exptime_s, rng,
                    xy=xy[compact], count=False,
                    log_re=rng.uniform(math.log(0.8), math.log(2.5), n_compact))
    n_point = n_clusters - n_compact
    point_mags = mags[~compact] + _colour(filter, n_point, rng)
    scene.add_stars(xy[~compact], _mag_to_e(point_mags, filter, exptime_s))
    n_stars = int(rng.integers(300, 1501) * _area_factor(scene.shape))
    xy = _sample_density(light, n_stars, rng)
    mags = _power_law_mags(n_stars, 22.0, 28.5, 0.3, rng)
    scene.add_stars(xy, _mag_to_e(mags + _colour(filter, n_stars, rng), filter, exptime_s))
    _field_galaxies(scene, 3.0, filter, exptime_s, rng)
    scene.n_hosts += 1


def _smooth_noise(shape, scale_px, rng):
    """Non-negative random field smoothed on ``scale_px``: |N(0, 1)| on a coarse grid,
    bilinearly interpolated (as two small matrix products)."""
    coarse = np.abs(rng.standard_normal((int(shape[0] / scale_px) + 2,
                                         int(shape[1] / scale_px) + 2)))

    def interpolation_matrix(n_fine, n_coarse):  # (n_fine, n_coarse), rows sum to 1
        pos = np.linspace(0.0, n_coarse - 1.0, n_fine)
        lo = np.minimum(pos.astype(int), n_coarse - 2)
        frac = pos - lo
        m = np.zeros((n_fine, n_coarse), np.float32)
        m[np.arange(n_fine), lo] = 1.0 - frac
        m[np.arange(n_fine), lo + 1] = frac
        return m

    wy = interpolation_matrix(shape[0], coarse.shape[0])
    wx = interpolation_matrix(shape[1], coarse.shape[1])
    return wy @ coarse.astype(np.float32) @ wx.T  # (ny, nx) float32


def _render(scene, filter):
    """Convolve the scene with the filter's PSF; returns expected electrons on the padded grid.

    Point sources: for each sub-pixel phase group, a delta image (flux at the nearest
    pixel), Fourier-multiplied by the PSF drawn at that phase.  Extended light (already
    pixel-integrated): Fourier-multiplied by the pixel-sampled PSF.  One inverse FFT.
    """
    phased_hat, sampled_hat = _psf_transforms(filter, scene.shape)
    ny, nx = scene.shape
    total = np.zeros((ny, nx // 2 + 1), np.complex128)
    used = False
    if scene.star_xy:
        xy = np.concatenate(scene.star_xy)
        flux = np.concatenate(scene.star_e)
        ix, iy = np.floor(xy[:, 0] + 0.5), np.floor(xy[:, 1] + 0.5)
        keep = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        P = PSF_PHASES
        jx = np.floor((xy[:, 0] - ix + 0.5) * P).astype(int).clip(0, P - 1)
        jy = np.floor((xy[:, 1] - iy + 0.5) * P).astype(int).clip(0, P - 1)
        flat = (iy * nx + ix).astype(np.int64)
        group = jy * P + jx
        for g in np.unique(group[keep]):
            sel = keep & (group == g)
            delta = np.bincount(flat[sel], weights=flux[sel], minlength=ny * nx).reshape(ny, nx)
            total += scipy.fft.rfft2(delta) * phased_hat[g // P, g % P]
            used = True
    if scene.extended is not None:
        total += scipy.fft.rfft2(scene.extended) * sampled_hat
        used = True
    if not used:
        return np.zeros(scene.shape)
    return np.clip(scipy.fft.irfft2(total, s=scene.shape), 0.0, None)


# --------------------------------------------------------------------------- cosmic rays


def _landau_mpv_e(path_um):
    r"""Landau most-probable charge (e-) and width :math:`\xi` (e-) for a MIP in silicon.

    PDG: :math:`\xi = (K/2)(Z/A)\rho\,x/\beta^2` and
    :math:`\Delta_p = \xi[\ln(2 m c^2 \beta^2\gamma^2/I) + \ln(\xi/I) + j - \beta^2 - \delta]`
    with K/2 = 0.1535 MeV cm^2/mol, Z/A = 0.4985, rho = 2.329 g/cm^3, I = 173 eV, j = 0.2,
    for a minimum-ionising particle (beta gamma = 3.6, beta^2 = 0.93, delta = 0.42).
    Energies become electrons at 3.6 eV per pair.
    """
    xi_ev = 0.1535e6 * 0.4985 * 2.329 * np.asarray(path_um) * 1e-4  # eV
    log_term = math.log(2 * 0.511e6 * 3.6**2 / 173.0) + 0.2 - 0.93 - 0.42
    mpv_ev = xi_ev * (log_term + np.log(xi_ev / 173.0))
    return mpv_ev / SI_PAIR_ENERGY_EV, xi_ev / SI_PAIR_ENERGY_EV


# scipy.stats.landau is the stable law with alpha = 1, beta = 1 in a parameterisation whose
# density peaks at x = -0.42928 and is narrower than Landau's phi(lambda) (peak at lambda =
# -0.22278) by pi/2: lambda - lambda_peak = (pi/2) (x - x_peak).  Checked in the tests.
SCIPY_LANDAU_PEAK = -0.42928
LANDAU_SCALE = math.pi / 2


def _landau_excess(size, rng, clip):
    """Draws of (Delta - Delta_p) / xi for Landau energy loss: 0 at the peak, long upper tail
    truncated at ``clip`` (delta electrons that carry more escape a thin layer)."""
    x = stats.landau.rvs(size=size, random_state=rng)
    return np.minimum(LANDAU_SCALE * (x - SCIPY_LANDAU_PEAK), clip)


def _landau_charge(path_um, rng, clip=300.0):
    """Charge (e-) collected from paths of ``path_um`` um in silicon:
    ``CR_COLLECTION_EFFICIENCY * (Delta_p + xi * excess)`` with a Landau-distributed excess."""
    mpv, xi = _landau_mpv_e(path_um)
    return CR_COLLECTION_EFFICIENCY * (mpv + xi * _landau_excess(np.shape(path_um), rng, clip))


def _cosmic_rays(shape, exptime_s, thickness_um, rng):
    """CR charge image (e-) of ``shape`` and the number of CRs.

    Arrivals: Poisson(R A t) with R = `CR_RATE_PER_CM2_S`, A the frame area at 15 um
    pitch.  Centres uniform on the frame; azimuth uniform; an isotropic flux crossing a
    plane has zenith angles with p(theta) = sin(2 theta), i.e. sin^2(theta) ~ U(0, 1).

    * straight tracks (most): projected length L = d tan(theta) / pitch (d = CCD thickness),
      path in silicon d / cos(theta), total charge Landau for that path times the
      collection efficiency (`_landau_charge`),
      shared along the track in steps of 0.2 px with Landau fluctuations per step; charge
      made near the back surface diffuses more (sigma 0.56 px) than near the gates (0.15 px),
      so one end of an inclined track is sharp and the other soft;
    * worms (`CR_WORM_FRACTION`): curly random walks of 3-15 px, log-normal charge around
      1500 e-, sigma 0.3 px;
    * spots (`CR_SPOT_FRACTION`): single-pixel hits, log-normal charge around 300 e-
      (some near the noise), sigma 0.15 px.

    Every deposit point spreads as a pixel-integrated 2-D Gaussian.
    """
    ny, nx = shape
    n = rng.poisson(expected_cr_count(1, exptime_s) * nx * ny)
    kind = rng.random(n)
    is_worm = kind < CR_WORM_FRACTION
    is_spot = (kind >= CR_WORM_FRACTION) & (kind < CR_WORM_FRACTION + CR_SPOT_FRACTION)
    is_track = ~(is_worm | is_spot)
    centre = rng.uniform((-0.5, -0.5), (nx - 0.5, ny - 0.5), (n, 2))
    xs, ys, qs, sig = [], [], [], []

    # straight tracks
    nt = int(is_track.sum())
    if nt:
        sin2 = rng.random(nt)
        tan_t = np.sqrt(sin2 / np.maximum(1.0 - sin2, 1e-12))
        length = np.minimum(thickness_um * tan_t / PIXEL_PITCH_UM, CR_MAX_LENGTH_PX)
        path_um = np.hypot(thickness_um, length * PIXEL_PITCH_UM)  # d / cos(theta), capped
        total = _landau_charge(path_um, rng)
        azimuth = rng.uniform(0.0, 2 * np.pi, nt)
        steps = np.maximum(3, np.ceil(length / 0.2)).astype(int)
        track = np.repeat(np.arange(nt), steps)
        first = np.cumsum(steps) - steps
        t = (np.arange(track.size) - first[track] + 0.5) / steps[track]  # 0 back .. 1 front
        seg_mpv, seg_xi = _landau_mpv_e(path_um[track] / steps[track])
        w = seg_mpv + seg_xi * _landau_excess(track.size, rng, 80.0)
        w = np.maximum(w, 0.05 * seg_mpv)
        w_sum = np.bincount(track, weights=w, minlength=nt)
        c_track = centre[is_track]
        xs.append(c_track[track, 0] + (t - 0.5) * length[track] * np.cos(azimuth[track]))
        ys.append(c_track[track, 1] + (t - 0.5) * length[track] * np.sin(azimuth[track]))
        qs.append(total[track] * w / w_sum[track])
        back, front = CR_DIFFUSION_SIGMA_PX
        sig.append(back + (front - back) * t)

    # worms: curly random walks
    for c in centre[is_worm]:
        steps = int(rng.integers(6, 30))
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.6, steps))
        wx = c[0] + np.cumsum(0.5 * np.cos(heading))
        wy = c[1] + np.cumsum(0.5 * np.sin(heading))
        q = math.exp(rng.normal(math.log(1500.0), 0.5)) * rng.dirichlet(np.full(steps, 3.0))
        xs.append(wx), ys.append(wy), qs.append(q), sig.append(np.full(steps, 0.3))

    # single-pixel hits
    ns = int(is_spot.sum())
    if ns:
        xs.append(centre[is_spot, 0]), ys.append(centre[is_spot, 1])
        qs.append(np.exp(rng.normal(math.log(300.0), 0.9, ns)))
        sig.append(np.full(ns, 0.15))

    image = np.zeros(shape)
    if n:
        image = _deposit(np.concatenate(xs), np.concatenate(ys), np.concatenate(qs),
                         np.concatenate(sig), shape)
    return image, n


def _deposit(x, y, q, sigma, shape, radius=3):
    r"""Sum of pixel-integrated Gaussians: pixel (i, j) gets
    :math:`q\,[\Phi((j+\tfrac12-x)/\sigma)-\Phi((j-\tfrac12-x)/\sigma)]\,[\ldots y \ldots]`,
    evaluated on the (2 radius + 1)^2 pixels around each point.
    """
    ny, nx = shape
    k = np.arange(-radius, radius + 1)
    cx, cy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    px = cx[:, None] + k  # (n, K)
    py = cy[:, None] + k
    s = sigma[:, None]
    wx = ndtr((px + 0.5 - x[:, None]) / s) - ndtr((px - 0.5 - x[:, None]) / s)
    wy = ndtr((py + 0.5 - y[:, None]) / s) - ndtr((py - 0.5 - y[:, None]) / s)
    weights = q[:, None, None] * wy[:, :, None] * wx[:, None, :]  # (n, K, K)
    iy = np.broadcast_to(py[:, :, None], weights.shape)
    ix = np.broadcast_to(px[:, None, :], weights.shape)
    ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    flat = (iy[ok] * nx + ix[ok]).astype(np.int64)
    return np.bincount(flat, weights=weights[ok], minlength=ny * nx).reshape(shape)


# --------------------------------------------------------------------------- detector effects


def _bleed(charge, full_well):
    """Vertical blooming: charge above ``full_well`` spills up and down its column.

    Each run of over-full pixels keeps ``full_well`` and hands its excess, half up and half
    down the column, to the next pixels, filling each to ``full_well`` before moving on
    (IHB 4.3.1: "excess charge will flow into adjacent pixels along the column").  Charge
    that reaches the frame edge is lost.  Returns the new charge (float64) and a bool map of
    saturated and bled pixels.
    """
    charge = charge.astype(float)
    touched = charge > full_well
    if not touched.any():
        return charge, touched
    for j in np.flatnonzero(touched.any(axis=0)):
        col = charge[:, j]
        rows = np.flatnonzero(col > full_well)
        for run in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1):
            a, b = run[0], run[-1] + 1
            excess = float((col[a:b] - full_well).sum())
            col[a:b] = full_well
            for seg, rows_seg in ((col[b:], np.arange(b, col.size)),
                                  (col[:a][::-1], np.arange(a - 1, -1, -1))):
                filled = _fill(seg, excess / 2.0, full_well)
                touched[rows_seg[:filled], j] = True
    return charge, touched


def _fill(seg, amount, full_well):
    """Pour ``amount`` into ``seg`` (a view) pixel by pixel up to ``full_well``; returns the
    number of pixels that received charge."""
    room = np.maximum(full_well - seg, 0.0)
    cum = np.cumsum(room)
    k = int(np.searchsorted(cum, amount))
    if k >= seg.size:
        seg[:] += room
        return seg.size
    seg[:k] += room[:k]
    seg[k] += amount - (cum[k - 1] if k else 0.0)
    return k + 1


def _read_out(expected_e, full_well_e, read_noise_e, rng):
    r"""What the CCD reports for ``expected_e`` electrons per pixel.

    .. math:: \mathrm{image} = g\,\mathrm{round}\big((\mathrm{bleed}(\mathrm{Poisson}(\lambda))
              + \mathcal{N}(0, \sigma_{read}^2)) / g\big)

    with lambda = ``expected_e`` and gain g = `GAIN_E_PER_ADU` (the ADC step, IHB Table 3.1).
    Returns the float32 image
    in electrons and the bool map of saturated and bled pixels.
    """
    charge, saturated = _bleed(rng.poisson(expected_e), full_well_e)
    read = charge + rng.normal(0.0, read_noise_e, charge.shape)
    return (GAIN_E_PER_ADU * np.round(read / GAIN_E_PER_ADU)).astype(np.float32), saturated


def _detector_defects(shape, exptime_s, rng):
    """Hot pixels and bad columns.

    Returns
    -------
    dark_extra : ndarray
        Extra dark charge (e-) of hot pixels and hot columns.
    response : ndarray
        Multiplicative response to light (< 1 on low-response columns, 1 elsewhere).
    defect : ndarray of bool
        Pixels to ignore.
    """
    ny, nx = shape
    dark_extra = np.zeros(shape)
    response = np.ones(shape)
    defect = np.zeros(shape, bool)
    n_hot = rng.binomial(ny * nx, rng.uniform(*HOT_PIXEL_FRACTION_RANGE))
    where = rng.choice(ny * nx, size=n_hot, replace=False)
    lo, hi = np.log(HOT_PIXEL_RATE_E_PER_S)
    dark_extra.ravel()[where] = np.exp(rng.uniform(lo, hi, n_hot)) * exptime_s
    defect.ravel()[where] = True
    for _ in range(rng.poisson(BAD_COLUMNS_PER_256 * nx / 256.0)):
        j = int(rng.integers(0, nx))
        if rng.random() < 0.5:
            r0, r1 = 0, ny
        elif rng.random() < 0.5:
            r0, r1 = int(rng.integers(0, ny - 1)), ny
        else:
            r0, r1 = 0, int(rng.integers(1, ny))
        if rng.random() < 0.5:  # hot column: elevated dark current
            dark_extra[r0:r1, j] += rng.uniform(0.02, 0.3) * exptime_s
        else:  # low-response column (charge trap)
            response[r0:r1, j] *= rng.uniform(0.2, 0.8)
        defect[r0:r1, j] = True
    return dark_extra, response, defect


# --------------------------------------------------------------------------- public API


def simulate_frame(size=256, field="EX", filter="F606W", exptime_s=500.0, seed=0, *,
                   mask_threshold_sigma=1.0):
    r"""Simulate one ACS/WFC-like frame with cosmic rays.

    Parameters
    ----------
    size : int
        Frame width and height in pixels (>= 16).
    field : {"EX", "GC", "GAL", "mixed"}
        Sparse extragalactic field, crowded globular-cluster field, resolved nearby galaxy,
        or one of the three drawn from ``seed`` (recorded in ``meta["field"]``).
    filter : {"F435W", "F606W", "F814W"}
        ACS/WFC filter: sets the PSF wavelength, zeropoint, sky rate and charge diffusion.
    exptime_s : float
        Exposure time in seconds (> 0); scales sources, sky, dark and the number of CRs.
    seed : int
        Non-negative seed; the same seed gives identical arrays.
    mask_threshold_sigma : float
        A pixel is in the CR ``mask`` when its CR charge exceeds this many sigma of its own
        noise without the CR:

        .. math:: c_{ij} > k \sqrt{n_{ij} + \sigma_{read}^2}

        where c is ``cr_image`` and n is ``noiseless`` (both as returned, float32).

    Returns
    -------
    SimulatedFrame
        ``image``, ``mask``, ``ignore``, ``cr_image``, ``noiseless`` of shape (size, size),
        ``sky_e`` and ``meta``.

    Raises
    ------
    ValueError
        On an unknown field or filter, size < 16, exptime_s <= 0, a negative seed or a
        non-positive mask_threshold_sigma.
    TypeError
        On arguments of the wrong type.
    """
    size = _check_size(size)
    field = _check_field(field)
    filter = _check_filter(filter)
    exptime_s = _check_exptime(exptime_s)
    seed = _check_seed(seed)
    if not isinstance(mask_threshold_sigma, numbers.Real) or not mask_threshold_sigma > 0:
        raise ValueError(f"mask_threshold_sigma must be a positive number, "
                         f"got {mask_threshold_sigma!r}")
    rng = np.random.default_rng(seed)
    if field == "mixed":
        field = FIELDS[int(rng.integers(len(FIELDS)))]

    read_noise_e = float(rng.uniform(*READ_NOISE_RANGE_E))
    full_well_e = float(rng.uniform(*SATURATION_RANGE_E))
    thickness_um = float(rng.uniform(*CCD_THICKNESS_UM))
    lo, hi = np.log(FILTERS[filter].sky_e_per_s)
    sky_e = float(np.exp(rng.uniform(lo, hi)) * exptime_s)

    # sources, on a grid padded by half a PSF stamp so light from outside the frame enters
    pad = PSF_STAMP // 2
    padded = (scipy.fft.next_fast_len(size + 2 * pad, real=True),) * 2
    scene = _Scene(shape=padded, pad=pad, size=size)
    scene_rng = np.random.default_rng([seed, 1])
    if field == "EX":
        _scene_ex(scene, filter, exptime_s, scene_rng)
    elif field == "GC":
        _scene_gc(scene, filter, exptime_s, scene_rng)
    else:
        _scene_gal(scene, filter, exptime_s, scene_rng)
    sources = _render(scene, filter)[pad:pad + size, pad:pad + size]
    star_xy = np.concatenate(scene.star_xy) if scene.star_xy else np.zeros((0, 2))
    n_stars = _count_inside(star_xy, pad, size)
    galaxy_xy = np.concatenate(scene.galaxy_xy) if scene.galaxy_xy else np.zeros((0, 2))
    n_galaxies = _count_inside(galaxy_xy, pad, size) + scene.n_hosts

    dark_extra, response, defect = _detector_defects((size, size), exptime_s, rng)
    noiseless = ((sources + sky_e) * response + DARK_E_PER_S * exptime_s + dark_extra)
    noiseless32 = noiseless.astype(np.float32)
    cr_image, n_crs = _cosmic_rays((size, size), exptime_s, thickness_um, rng)
    cr32 = cr_image.astype(np.float32)

    image, saturated = _read_out(noiseless + cr_image, full_well_e, read_noise_e, rng)

    threshold = mask_threshold_sigma * np.sqrt(noiseless32.astype(float) + read_noise_e**2)
    mask = cr32.astype(float) > threshold
    ignore = defect | saturated
    meta = dict(field=field, filter=filter, exptime_s=exptime_s, seed=seed,
                n_stars=n_stars, n_galaxies=n_galaxies,
                n_crs=int(n_crs), read_noise_e=read_noise_e, gain_e_per_adu=GAIN_E_PER_ADU,
                sky_e=sky_e, full_well_e=full_well_e, ccd_thickness_um=thickness_um,
                mask_threshold_sigma=float(mask_threshold_sigma))
    return SimulatedFrame(image=image, mask=mask, ignore=ignore, cr_image=cr32,
                          noiseless=noiseless32, sky_e=sky_e, meta=meta)


def frame_seed(seed, i):
    """Seed of frame ``i`` of a dataset with seed ``seed``.

    ``numpy.random.SeedSequence([seed, i])`` hashed to one 32-bit word, so that frame ``i``
    can be simulated alone and frames of nearby (seed, i) pairs are independent.

    Parameters
    ----------
    seed, i : int
        Non-negative dataset seed and frame index.

    Returns
    -------
    int
    """
    seed = _check_seed(seed)
    i = _check_seed(i, "i")
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def _check_choices(values, check, name):
    if isinstance(values, str):
        values = (values,)
    try:
        values = tuple(values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of names, got {values!r}") from None
    if not values:
        raise ValueError(f"{name} must name at least one choice, got an empty sequence")
    try:
        return tuple(check(v) for v in values)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


def _check_exptime_range(exptime_s):
    if isinstance(exptime_s, numbers.Real):
        t = _check_exptime(exptime_s)
        return t, t
    try:
        lo, hi = exptime_s
    except (TypeError, ValueError):
        raise ValueError(f"exptime_s must be a number or a (min, max) pair of seconds, "
                         f"got {exptime_s!r}") from None
    lo, hi = _check_exptime(lo), _check_exptime(hi)
    if hi < lo:
        raise ValueError(f"exptime_s range must have min <= max, got {exptime_s!r}")
    return lo, hi


def frame_spec(i, seed=0, fields=FIELDS, filters=tuple(FILTERS), exptime_s=(100, 1200)):
    """Field, filter, exposure time and seed of frame ``i`` of a dataset, without simulating.

    Field and filter are drawn uniformly from ``fields`` and ``filters``; the exposure time
    is log-uniform on ``exptime_s = (min, max)`` (rounded to 0.1 s) or fixed if a number.
    The draws depend only on ``(seed, i)``.

    Returns
    -------
    dict
        ``field``, ``filter``, ``exptime_s``, ``seed``: keyword arguments of
        `simulate_frame`.
    """
    seed = _check_seed(seed)
    i = _check_seed(i, "i")
    fields = _check_choices(fields, _check_field, "fields")
    filters = _check_choices(filters, _check_filter, "filters")
    lo, hi = _check_exptime_range(exptime_s)
    rng = np.random.default_rng([seed, i, 2])
    field = fields[int(rng.integers(len(fields)))]
    filter = filters[int(rng.integers(len(filters)))]
    t = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    t = min(max(round(t, 1), lo), hi)
    return dict(field=field, filter=filter, exptime_s=float(t), seed=frame_seed(seed, i))


def make_dataset(n, size=256, fields=FIELDS, filters=tuple(FILTERS), exptime_s=(100, 1200),
                 seed=0, *, mask_threshold_sigma=1.0):
    """Simulate ``n`` frames; frame ``i`` is ``simulate_frame(size, **frame_spec(i, ...))``.

    Parameters
    ----------
    n : int
        Number of frames (>= 1).
    size : int
        Frame width (>= 16).
    fields, filters : sequence of str
        Field types and filters drawn from (see `frame_spec`).
    exptime_s : float or (float, float)
        Exposure time, or the range it is drawn from (log-uniform), in seconds.
    seed : int
        Dataset seed.
    mask_threshold_sigma : float
        See `simulate_frame`.

    Returns
    -------
    SimulatedSet
        ``image`` (n, size, size) float32, ``mask`` and ``ignore`` bool, ``sky`` (n,)
        float32 and ``meta`` (one row per frame, with its ``index``).
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be a positive int, got {type(n).__name__} {n!r}")
    if n < 1:
        raise ValueError(f"n must be a positive int, got {n}")
    size = _check_size(size)
    image = np.empty((n, size, size), np.float32)
    mask = np.empty((n, size, size), bool)
    ignore = np.empty((n, size, size), bool)
    sky = np.empty(n, np.float32)
    rows = []
    for i in range(n):
        spec = frame_spec(i, seed, fields, filters, exptime_s)
        frame = simulate_frame(size=size, mask_threshold_sigma=mask_threshold_sigma, **spec)
        image[i], mask[i], ignore[i], sky[i] = frame.image, frame.mask, frame.ignore, frame.sky_e
        rows.append(dict(index=i, **frame.meta))
    return SimulatedSet(image=image, mask=mask, ignore=ignore, sky=sky, meta=pd.DataFrame(rows))


def _atomic_save(path, array):
    """``numpy.save`` to a temporary file in the same directory, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_pairs(directory, dataset):
    """Write ``dataset`` in deepCR's 'pair' file layout.

    One ``NNNNNN_<field>_<filter>.npy`` per frame holding a float32 array (3, W, W) =
    [image, mask, ignore], and ``sky.npy`` (n,) float32.  deepCR 0.3.1's
    ``PairedDatasetImagePath`` reads the number before the first underscore as a 1-based
    index into ``sky.npy`` of the same directory, so frames are numbered from 000001.
    Every file is written to a temporary name and renamed.

    Parameters
    ----------
    directory : str or os.PathLike
        Created if missing.
    dataset : SimulatedSet
        From `make_dataset`.

    Returns
    -------
    list of str
        The frame paths in order: ``deepCR.train(paths, mode='pair')`` takes them.
    """
    if not isinstance(dataset, SimulatedSet):
        raise TypeError(f"dataset must be a SimulatedSet (from make_dataset), "
                        f"got {type(dataset).__name__}")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"directory {str(directory)!r} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    meta = dataset.meta
    paths = []
    for i in range(len(dataset)):
        name = f"{i + 1:06d}_{meta['field'].iloc[i]}_{meta['filter'].iloc[i]}.npy"
        stack = np.stack([dataset.image[i], dataset.mask[i], dataset.ignore[i]]).astype(np.float32)
        _atomic_save(directory / name, stack)
        paths.append(str(directory / name))
    _atomic_save(directory / "sky.npy", np.asarray(dataset.sky, np.float32))
    return paths
