"""Cosmic rays: arrival rate, straight tracks with Landau energy loss and depth-dependent
charge diffusion, curly worms, single-pixel spots, and their deposit on the pixel grid.

References (keys as in `cosmiq_pyro.data.simulate`): HST Data Handbook (WF/PC-1) and WFPC2 IHB
(event rate), IHB Ch. 5 and 7.5, IHB-C14 4.3 and 5.6.6 (CR statistics, CCD thickness),
IHB 5.6.1 (diffusion kernel), PDG (Landau-Vavilov-Bichsel energy loss).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.special import ndtr

from ...instruments import get_instrument
from .detector import PIXEL_PITCH_UM

# HST Data Handbook, WF/PC-1 Sec. 46.5: ~1.7 CR events per second per 800x800 CCD of 15 um
# pixels (1.44 cm^2) -> 1.18 cm^-2 s^-1.  WFPC2 IHB 4.9: WFPC2's event rate is similar;
# ACS IHB Ch. 5: the WFC cosmic-ray flux is comparable to WFPC2's.  Cross-check against
# IHB-C14: 1.2 cm^-2 s^-1 x 0.147 cm^2 x 1000 s = 177 CRs per 256^2 frame; at 5.5-11 pixels
# each that is the handbook's 1.5-3 % of pixels (and ~4-7 % per orbit, IHB 7.5).
CR_RATE_PER_CM2_S = 1.2
# IHB-C14 5.6.6: WFC CCDs are 12-17 um thick (per frame); from the ACS-WFC spec
CCD_THICKNESS_UM = get_instrument("ACS-WFC").detector.ccd_thickness_um
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
