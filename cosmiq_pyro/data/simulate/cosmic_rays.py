"""Cosmic rays: arrival rate, straight tracks with Landau energy loss and depth-dependent
charge diffusion, curly worms, single-pixel spots, and their deposit on the pixel grid.

The camera's CR environment is its spec's ``[simulation.cosmic_rays]`` table
(`cosmiq_pyro.instruments.simulation.CosmicRaySim`), its pixel pitch and CCD thickness its
``[detector]`` table; the sources of each number are in the spec files.  Two environments:

* ``"space"`` (HST): an isotropic flux of energetic protons and nuclei; the flux through the
  CCD plane has zenith angles with p(theta) = sin(2 theta), i.e. sin^2(theta) ~ U(0, 1);
* ``"ground"``: secondary muons, whose intensity per solid angle goes as cos^2(theta) (PDG,
  "Cosmic rays", 29.3), so the flux through a CCD facing the zenith has
  p(theta) ~ cos^3(theta) sin(theta), i.e. cos(theta) = U^(1/4); tracks are long in thick
  CCDs (projected length d tan(theta) / pitch), and low-energy electrons make curly worms.

Both: Landau energy loss of a minimum-ionising particle (PDG, "Passage of particles through
matter") over the path d / cos(theta) in silicon.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.special import ndtr

__all__ = ["SI_PAIR_ENERGY_EV", "cr_rate_per_cm2_s", "expected_cr_count", "SCIPY_LANDAU_PEAK",
           "LANDAU_SCALE"]

SI_PAIR_ENERGY_EV = 3.6  # mean energy per electron-hole pair in silicon


def cr_rate_per_cm2_s(instrument="ACS-WFC"):
    """Cosmic-ray event rate of ``instrument``'s spec, in events cm^-2 s^-1 (at the real rate)."""
    from .camera import resolve_instrument

    return resolve_instrument(instrument).simulation.cosmic_rays.rate_per_cm2_s


def expected_cr_count(size, exptime_s, instrument="ACS-WFC", cr_rate_multiplier=1.0):
    r"""Mean number of CR events hitting a ``size`` x ``size`` frame in ``exptime_s`` seconds.

    .. math:: \bar N = R \, (N_{px} \, p)^2 \, t \, m,

    with R the spec's event rate (cm^-2 s^-1), p its pixel pitch and m ``cr_rate_multiplier``
    (1 for the real rate).
    """
    from .camera import resolve_instrument

    inst = resolve_instrument(instrument)
    return _expected_count(size, exptime_s, inst.detector.pixel_pitch_um,
                           inst.simulation.cosmic_rays.rate_per_cm2_s) * float(cr_rate_multiplier)


def _expected_count(size, exptime_s, pitch_um, rate_per_cm2_s):
    side_cm = size * pitch_um * 1e-4
    return rate_per_cm2_s * side_cm**2 * float(exptime_s)


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


def _landau_charge(path_um, efficiency, rng, clip=300.0):
    """Charge (e-) collected from paths of ``path_um`` um in silicon:
    ``efficiency * (Delta_p + xi * excess)`` with a Landau-distributed excess."""
    mpv, xi = _landau_mpv_e(path_um)
    return efficiency * (mpv + xi * _landau_excess(np.shape(path_um), rng, clip))


def _cosmic_rays(shape, exptime_s, thickness_um, pitch_um, cr, rng, multiplier=1.0):
    """CR charge image (e-) of ``shape`` and the number of CR events.

    Arrivals: Poisson(R A t m) with R = ``cr.rate_per_cm2_s``, A the frame area at
    ``pitch_um`` and m = ``multiplier``.  Centres uniform on the frame; azimuth uniform; zenith
    angles by ``cr.environment`` (module notes).

    * straight tracks (most): projected length L = d tan(theta) / pitch (d = CCD thickness),
      path in silicon d / cos(theta), total charge Landau for that path times
      ``cr.collection_efficiency`` (`_landau_charge`), shared along the track in steps of
      0.2 px with Landau fluctuations per step; charge made near the back surface diffuses
      more (``cr.diffusion_back_px``) than near the gates (``cr.diffusion_front_px``), so one
      end of an inclined track is sharp and the other soft;
    * worms (``cr.worm_fraction``): curly random walks of ``cr.worm_steps`` steps of 0.5 px,
      log-normal charge around ``cr.worm_charge_e``, sigma 0.3 px;
    * spots (``cr.spot_fraction``): single-pixel hits, log-normal charge around
      ``cr.spot_charge_e`` (some near the noise), sigma 0.15 px.

    Every deposit point spreads as a pixel-integrated 2-D Gaussian.
    """
    ny, nx = shape
    n = rng.poisson(_expected_count(1, exptime_s, pitch_um, cr.rate_per_cm2_s) * nx * ny * multiplier)
    kind = rng.random(n)
    is_worm = kind < cr.worm_fraction
    is_spot = (kind >= cr.worm_fraction) & (kind < cr.worm_fraction + cr.spot_fraction)
    is_track = ~(is_worm | is_spot)
    centre = rng.uniform((-0.5, -0.5), (nx - 0.5, ny - 0.5), (n, 2))
    xs, ys, qs, sig = [], [], [], []

    # straight tracks
    nt = int(is_track.sum())
    if nt:
        tan_t = _tan_zenith(nt, cr.environment, rng)
        length = np.minimum(thickness_um * tan_t / pitch_um, cr.max_length_px)
        path_um = np.hypot(thickness_um, length * pitch_um)  # d / cos(theta), capped
        total = _landau_charge(path_um, cr.collection_efficiency, rng)
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
        back, front = cr.diffusion_back_px, cr.diffusion_front_px
        sig.append(back + (front - back) * t)

    # worms: curly random walks
    lo, hi = cr.worm_steps
    for c in centre[is_worm]:
        steps = int(rng.integers(lo, hi + 1))
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.6, steps))
        wx = c[0] + np.cumsum(0.5 * np.cos(heading))
        wy = c[1] + np.cumsum(0.5 * np.sin(heading))
        q = math.exp(rng.normal(math.log(cr.worm_charge_e), cr.worm_charge_scatter_ln)) * \
            rng.dirichlet(np.full(steps, 3.0))
        xs.append(wx), ys.append(wy), qs.append(q), sig.append(np.full(steps, 0.3))

    # single-pixel hits
    ns = int(is_spot.sum())
    if ns:
        xs.append(centre[is_spot, 0]), ys.append(centre[is_spot, 1])
        qs.append(np.exp(rng.normal(math.log(cr.spot_charge_e), cr.spot_charge_scatter_ln, ns)))
        sig.append(np.full(ns, 0.15))

    image = np.zeros(shape)
    if n:
        image = _deposit(np.concatenate(xs), np.concatenate(ys), np.concatenate(qs),
                         np.concatenate(sig), shape)
    return image, n


def _tan_zenith(n, environment, rng):
    r"""tan(theta) of ``n`` particles crossing the CCD plane.

    ``"space"``: isotropic intensity, flux through a plane :math:`p(\theta) = \sin 2\theta`:
    :math:`\sin^2\theta \sim U(0, 1)`.  ``"ground"``: muon intensity
    :math:`\propto \cos^2\theta` (PDG), flux :math:`\propto \cos^3\theta \sin\theta`:
    :math:`\cos\theta = U^{1/4}`.
    """
    u = rng.random(n)
    if environment == "space":
        return np.sqrt(u / np.maximum(1.0 - u, 1e-12))
    cos_t = np.maximum(u, 1e-12) ** 0.25
    return np.sqrt(1.0 - cos_t**2) / cos_t


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
