"""Land-model column kernel (numba gufunc) and its NumPy reference.

A compact multi-layer soil water + snow + glacier + ET model (SCIENCE.md §B9, §B11). The
kernel :func:`land_column` loops over ``time`` inside (state stays in registers); the
gufunc machinery vectorises it over cells and members, in parallel over threads.
:func:`land_reference` is the same algorithm written with NumPy arrays over a cell axis,
used by the tests (and by the benchmark as the "vectorised NumPy" baseline).

Physics of one sub-step ``h`` (s), in this order:

1. rain/snow partition (linear between ``T_SNOW`` and ``T_RAIN``);
2. net radiation (1−α)SW↓ + ε(LW↓ − σT_a⁴) with a snow-cover albedo, SiTH potential ET
   split (Beer's law, k = 0.6) through the SAME scalar functions as
   :mod:`xldas.physics.evaporation`;
3. canopy interception (fraction 1 − e^(−0.5 LAI) of rain, capacity 0.2·LAI kg m-2,
   evaporation f_wet·pE_c with f_wet = W/W_max);
4. snowpack: degree-day melt, sublimation f_sc·pE_s; glacier melt DDF_ice·max(T,0) on the
   glacier fraction not covered by snow (unlimited ice, a source of water);
5. infiltration: Schaake et al. (1996) saturation-deficit form, capped by the
   infiltration capacity K_s of the (possibly frozen) top layer → infiltration-excess and
   saturation-excess runoff; infiltrated water fills the column from the top;
6. soil evaporation pE_s·min(1, (θ₁−θ_r)/(θ_fc−θ_r)) and root uptake
   pE_c(1−f_wet)·r_j·β_j, β_j = clip((θ_j−θ_wp)/(θ_c−θ_wp), 0, 1), θ_c = θ_wp + 0.6(θ_fc−θ_wp);
7. vertical flow, Clapp–Hornberger: gravity drainage K(θ_j) out of each layer (free
   drainage at the bottom) and diffusion D̄(θ_j − θ_{j+1})/Δz between layers, both
   linearised-implicit (unconditionally stable); one ``log`` and one ``exp`` per layer
   (s^b) give ψ, K and D by multiplication only;
8. soil temperature: backward-Euler conduction through the layers (Thomas algorithm),
   top boundary the air temperature (≤ 0 °C under snow, with the snowpack's thermal
   resistance), zero flux at the bottom; frozen soil (T < 0 °C) impedes K linearly
   (factor 1 − 0.95·f, f ramping over 1 K).

Every flux moves water between stores with the same number added and subtracted, and each
transfer is bounded by what the source holds above θ_r and the sink can take below θ_s,
so θ stays within [θ_r, θ_s] and the water balance
``precip + glacier_melt = et + runoff + drainage + Δ(soil water + swe + canopy_water)``
closes to round-off (float64 arithmetic inside, whatever the state dtype).
"""

from __future__ import annotations

import numpy as np

from xldas._numba import gufunc, njit
from xldas.physics._et_kernels import (
    degree_day_melt,
    net_radiation_surface,
    sith_split,
)

__all__ = ["clapp_hornberger", "column_physics", "land_column", "land_reference"]

T0 = 273.15  # K
T_SNOW = 0.0  # degC: all precipitation is snow at or below
T_RAIN = 2.0  # degC: all precipitation is rain at or above
RHO_W = 1000.0  # kg m-3
SWE_HALF_COVER = 10.0  # kg m-2: snow-cover fraction swe / (swe + SWE_HALF_COVER)
ALBEDO_SNOW = 0.7
EMISSIVITY = 0.97
INTERCEPTION_CAPACITY = 0.2  # kg m-2 per unit LAI
INTERCEPTION_K = 0.5  # interception fraction 1 - exp(-k LAI)
K_RN = 0.6  # Beer's law for net radiation
THETA_C_FRACTION = 0.6  # theta_c = theta_wp + 0.6 (theta_fc - theta_wp)
SCHAAKE_KDT = 3.0 / 2.0e-6  # k_dt = 3 K_s / 2e-6 (K_s in m s-1)
C_SOLID = 2.0e6  # J m-3 K-1, volumetric heat capacity of soil solids
C_WATER = 4.18e6  # J m-3 K-1
LAMBDA_DRY = 0.25  # W m-1 K-1
LAMBDA_WET_EXTRA = 1.5  # W m-1 K-1 added at saturation
LAMBDA_SNOW = 0.3  # W m-1 K-1
RHO_SNOW = 250.0  # kg m-3
FROZEN_IMPEDANCE = 0.95
S_MIN = 1e-6


@njit
def clapp_hornberger(theta, theta_s, b, ksat, psi_sat):
    """Clapp & Hornberger (1978) K(θ), ψ(θ) and D(θ) with one ``log`` and one ``exp``.

    With s = θ/θ_s and p = s^b: ψ = ψ_s/p, K = K_s·p²·s³ (= K_s s^(2b+3)),
    D = b·K_s·ψ_s/θ_s·p·s² (= b K_s ψ_s/θ_s s^(b+2)). Units of K, D follow K_s (and ψ_s).
    """
    s = np.maximum(theta / theta_s, S_MIN)
    p = np.exp(b * np.log(s))
    return ksat * p * p * s * s * s, psi_sat / p, b * ksat * psi_sat / theta_s * p * s * s


def _sig(state: str, flux: str = "float64") -> str:
    f, s = state, state
    forcing = ", ".join([f"{f}[:]"] * 5)
    st = f"{s}[:], {s}[:], {s}, {s}"
    par = ", ".join(["float64[:]"] * 9) + ", " + ", ".join(["float64"] * 7)
    outs = f"{s}[:], {s}[:], {s}[:], {s}[:], " + ", ".join([f"{flux}[:]"] * 5)
    return f"void({forcing}, {st}, {par}, {outs})"


LAYOUT = (
    "(t),(t),(t),(t),(t),(l),(l),(),(),"
    "(l),(l),(l),(l),(l),(l),(l),(l),(l),(),(),(),(),(),(),()"
    "->(l),(l),(),(),(t),(t),(t),(t),(t)"
)


@njit
def column_physics(
    precip,
    tair,
    psurf,
    swdown,
    lwdown,
    sm0,
    ts0,
    swe0,
    cw0,
    theta_s,
    theta_r,
    theta_fc,
    theta_wp,
    b,
    ksat,
    psi_sat,
    root,
    dz,
    lai,
    ddf_snow,
    ddf_ice,
    fglac,
    albedo,
    dt,
    nsub,
    sm_out,
    ts_out,
    swe_out,
    cw_out,
    et,
    runoff,
    drainage,
    snowmelt,
    glacier_melt,
    scratch,
):
    """Body of :func:`land_column` for one column, with the (9, l) ``scratch`` given.

    Allocation-free, so that the same function runs inside the CPU gufunc (which
    allocates ``scratch`` per column) and inside the CUDA kernel of
    :mod:`xldas.models._cuda` (which passes a slice of a device work array): one
    implementation of the physics for both targets. Scalar outputs (``swe_out``,
    ``cw_out``) are 1-element arrays.
    """
    nl = sm0.shape[0]
    nt = precip.shape[0]
    ns = max(int(nsub), 1)
    h = dt / ns
    days = h / 86400.0
    # per-column constants (all transcendental work that does not depend on the state)
    tau = np.exp(-K_RN * lai)
    fint = 1.0 - np.exp(-INTERCEPTION_K * lai)
    wmax = INTERCEPTION_CAPACITY * lai
    kfac = 1.0 - np.exp(-SCHAAKE_KDT * ksat[0] * days)
    th = scratch[0]
    ts = scratch[1]
    kk = scratch[2]
    dd = scratch[3]
    imp = scratch[4]
    cp = scratch[5]
    dp = scratch[6]
    kint = scratch[7]
    dzw = scratch[8]
    for j in range(nl):
        dzw[j] = dz[j] * RHO_W
        ts[j] = ts0[j]
    # state, with values outside [theta_r, theta_s] corrected through runoff
    corr = 0.0
    for j in range(nl):
        v = float(sm0[j])
        lo = theta_r[j]
        hi = theta_s[j]
        if v > hi:
            corr += (v - hi) * dzw[j]
            v = hi
        elif v < lo:
            corr -= (lo - v) * dzw[j]
            v = lo
        th[j] = v
    swe = float(swe0)
    cw = float(cw0)
    for it in range(nt):
        a_et = 0.0
        a_ro = corr
        corr = 0.0
        a_dr = 0.0
        a_sm = 0.0
        a_gm = 0.0
        p_rate = float(precip[it])
        tk = float(tair[it])
        tc = tk - T0
        pkpa = float(psurf[it]) * 1e-3
        sw = float(swdown[it])
        lw = float(lwdown[it])
        for _ in range(ns):
            pr = p_rate * h
            # 1. phase
            fsnow = (T_RAIN - tc) / (T_RAIN - T_SNOW)
            fsnow = min(max(fsnow, 0.0), 1.0)
            snow = pr * fsnow
            rain = pr - snow
            # 2. radiation and potential ET
            fsc = swe / (swe + SWE_HALF_COVER)
            alb = albedo + (ALBEDO_SNOW - albedo) * fsc
            rn = net_radiation_surface(sw, lw, tk, alb, EMISSIVITY)
            pec, pes = sith_split(rn, 0.0, tau, tc, pkpa)
            # 3. canopy
            cw += rain * fint
            thr = rain * (1.0 - fint)
            if cw > wmax:
                thr += cw - wmax
                cw = wmax
            fwet = cw / wmax if wmax > 0.0 else 0.0
            ei = min(fwet * pec * h, cw)
            cw -= ei
            # 4. snow and glacier
            swe += snow
            melt = min(degree_day_melt(ddf_snow, tc, 0.0, days), swe)
            swe -= melt
            esub = min(fsc * pes * h, swe)
            swe -= esub
            fsc = swe / (swe + SWE_HALF_COVER)
            gm = fglac * (1.0 - fsc) * degree_day_melt(ddf_ice, tc, 0.0, days)
            # frozen-soil impedance per layer
            for j in range(nl):
                fi = min(max(T0 - ts[j], 0.0), 1.0)
                imp[j] = 1.0 - FROZEN_IMPEDANCE * fi
            # 5. infiltration and surface runoff
            px = thr + melt + gm
            ro = 0.0
            if px > 0.0:
                deficit = 0.0
                for j in range(nl):
                    deficit += (theta_s[j] - th[j]) * dzw[j]
                dk = deficit * kfac
                infl = px * dk / (px + dk) if dk > 0.0 else 0.0
                cap = ksat[0] * imp[0] * h * RHO_W
                if infl > cap:
                    infl = cap
                ro = px - infl
                for j in range(nl):
                    if infl <= 0.0:
                        break
                    room = (theta_s[j] - th[j]) * dzw[j]
                    a = min(infl, room)
                    th[j] += a / dzw[j]
                    infl -= a
                ro += infl
            # 6. soil evaporation and root uptake
            es = (1.0 - fsc) * pes * h
            f1 = (th[0] - theta_r[0]) / (theta_fc[0] - theta_r[0])
            es *= min(max(f1, 0.0), 1.0)
            es = min(es, (th[0] - theta_r[0]) * dzw[0])
            th[0] -= es / dzw[0]
            tpot = pec * h * (1.0 - fwet)
            tr = 0.0
            for j in range(nl):
                thc = theta_wp[j] + THETA_C_FRACTION * (theta_fc[j] - theta_wp[j])
                beta = (th[j] - theta_wp[j]) / (thc - theta_wp[j])
                beta = min(max(beta, 0.0), 1.0)
                u = min(tpot * root[j] * beta, (th[j] - theta_r[j]) * dzw[j])
                if u > 0.0:
                    th[j] -= u / dzw[j]
                    tr += u
            # 7. vertical flow (Clapp-Hornberger, linearised implicit)
            for j in range(nl):
                kk[j], _psi, dd[j] = clapp_hornberger(
                    th[j], theta_s[j], b[j], ksat[j] * imp[j], psi_sat[j]
                )
            for j in range(nl):
                # gravity out of layer j (into j+1, or bottom drainage)
                c = 2.0 * b[j] + 3.0
                g = kk[j] * h * RHO_W
                g = g / (1.0 + c * g / max(th[j] * dzw[j], S_MIN))
                if j < nl - 1:
                    dzm = 0.5 * (dz[j] + dz[j + 1])
                    xeq = (th[j] - th[j + 1]) * dzw[j] * dz[j + 1] / (dz[j] + dz[j + 1])
                    r = 0.5 * (dd[j] + dd[j + 1]) / dzm * (1.0 / dz[j] + 1.0 / dz[j + 1]) * h
                    a = g + xeq * r / (1.0 + r)
                    if a > 0.0:
                        a = min(a, (th[j] - theta_r[j]) * dzw[j])
                        a = min(a, (theta_s[j + 1] - th[j + 1]) * dzw[j + 1])
                        a = max(a, 0.0)
                    else:
                        a = max(a, -(th[j + 1] - theta_r[j + 1]) * dzw[j + 1])
                        a = max(a, -(theta_s[j] - th[j]) * dzw[j])
                        a = min(a, 0.0)
                    th[j] -= a / dzw[j]
                    th[j + 1] += a / dzw[j + 1]
                else:
                    a = min(g, (th[j] - theta_r[j]) * dzw[j])
                    a = max(a, 0.0)
                    th[j] -= a / dzw[j]
                    a_dr += a
            # 8. soil temperature (backward Euler, Thomas algorithm)
            for j in range(nl):
                lam = LAMBDA_DRY + LAMBDA_WET_EXTRA * th[j] / theta_s[j]
                kk[j] = 0.5 * dz[j] / lam  # half-layer thermal resistance
            for j in range(nl - 1):
                kint[j] = 1.0 / (kk[j] + kk[j + 1])
            kint[nl - 1] = 0.0
            if swe > 0.0:
                ttop = min(tk, T0)
                gtop = 1.0 / (kk[0] + swe / (RHO_SNOW * LAMBDA_SNOW))
            else:
                ttop = tk
                gtop = 1.0 / kk[0]
            for j in range(nl):
                cap_j = ((1.0 - theta_s[j]) * C_SOLID + th[j] * C_WATER) * dz[j]
                kup = gtop if j == 0 else kint[j - 1]
                diag = cap_j + h * (kup + kint[j])
                rhs = cap_j * ts[j]
                if j == 0:
                    rhs += h * gtop * ttop
                    low = 0.0
                else:
                    low = -h * kup
                den = diag - low * (cp[j - 1] if j > 0 else 0.0)
                cp[j] = -h * kint[j] / den
                dp[j] = (rhs - low * (dp[j - 1] if j > 0 else 0.0)) / den
            ts[nl - 1] = dp[nl - 1]
            for j in range(nl - 2, -1, -1):
                ts[j] = dp[j] - cp[j] * ts[j + 1]
            a_et += ei + esub + es + tr
            a_ro += ro
            a_sm += melt
            a_gm += gm
        inv = 1.0 / dt
        et[it] = a_et * inv
        runoff[it] = a_ro * inv
        drainage[it] = a_dr * inv
        snowmelt[it] = a_sm * inv
        glacier_melt[it] = a_gm * inv
    for j in range(nl):
        sm_out[j] = th[j]
        ts_out[j] = ts[j]
    swe_out[0] = swe
    cw_out[0] = cw


@gufunc([_sig("float32"), _sig("float64")], LAYOUT)
def land_column(
    precip,
    tair,
    psurf,
    swdown,
    lwdown,
    sm0,
    ts0,
    swe0,
    cw0,
    theta_s,
    theta_r,
    theta_fc,
    theta_wp,
    b,
    ksat,
    psi_sat,
    root,
    dz,
    lai,
    ddf_snow,
    ddf_ice,
    fglac,
    albedo,
    dt,
    nsub,
    sm_out,
    ts_out,
    swe_out,
    cw_out,
    et,
    runoff,
    drainage,
    snowmelt,
    glacier_melt,
):
    """Advance one column through ``len(precip)`` forcing steps of ``dt`` seconds.

    Forcing (t): precip (kg m-2 s-1), tair (K), psurf (Pa), swdown, lwdown (W m-2).
    State: sm0 (l, m3 m-3), ts0 (l, K), swe0, cw0 (kg m-2). Parameters per layer (l):
    theta_s, theta_r, theta_fc, theta_wp, b, ksat (m s-1), psi_sat (m), root fraction,
    dz (m); per cell: lai, ddf_snow, ddf_ice (kg m-2 K-1 d-1), glacier fraction, albedo;
    dt (s) the forcing interval, nsub the number of model sub-steps per interval.
    Outputs: the new state and per-step mean fluxes (kg m-2 s-1).
    """
    # scratch: one allocation per column, none in the time loop
    column_physics(
        precip,
        tair,
        psurf,
        swdown,
        lwdown,
        sm0,
        ts0,
        swe0,
        cw0,
        theta_s,
        theta_r,
        theta_fc,
        theta_wp,
        b,
        ksat,
        psi_sat,
        root,
        dz,
        lai,
        ddf_snow,
        ddf_ice,
        fglac,
        albedo,
        dt,
        nsub,
        sm_out,
        ts_out,
        swe_out,
        cw_out,
        et,
        runoff,
        drainage,
        snowmelt,
        glacier_melt,
        np.empty((9, sm0.shape[0])),
    )


def land_reference(
    precip,
    tair,
    psurf,
    swdown,
    lwdown,
    sm0,
    ts0,
    swe0,
    cw0,
    theta_s,
    theta_r,
    theta_fc,
    theta_wp,
    b,
    ksat,
    psi_sat,
    root,
    dz,
    lai,
    ddf_snow,
    ddf_ice,
    fglac,
    albedo,
    dt,
    nsub=1,
):
    """NumPy reference of :func:`land_column`, vectorised over a cell axis.

    Shapes: forcing (n, t); state sm0, ts0 (n, l); swe0, cw0 (n,); layer parameters
    (n, l); dz (l,); cell parameters (n,); ``dt`` (s) and ``nsub`` scalars. Returns
    ``(sm, ts, swe, cw, et, runoff, drainage, snowmelt, glacier_melt)`` in float64.
    """
    f8 = np.float64
    precip, tair, psurf, swdown, lwdown = (
        np.asarray(x, f8) for x in (precip, tair, psurf, swdown, lwdown)
    )
    n, nt = precip.shape
    theta_s, theta_r, theta_fc, theta_wp, b, ksat, psi_sat, root = (
        np.broadcast_to(np.asarray(x, f8), (n, np.shape(sm0)[-1])).T.copy()
        for x in (theta_s, theta_r, theta_fc, theta_wp, b, ksat, psi_sat, root)
    )  # (l, n)
    lai, ddf_snow, ddf_ice, fglac, albedo = (
        np.broadcast_to(np.asarray(x, f8), (n,)) for x in (lai, ddf_snow, ddf_ice, fglac, albedo)
    )
    dz = np.asarray(dz, f8)
    nl = dz.shape[0]
    ns = max(int(nsub), 1)
    h = dt / ns
    days = h / 86400.0
    tau = np.exp(-K_RN * lai)
    fint = 1.0 - np.exp(-INTERCEPTION_K * lai)
    wmax = INTERCEPTION_CAPACITY * lai
    kfac = 1.0 - np.exp(-SCHAAKE_KDT * ksat[0] * days)
    dzw = dz * RHO_W
    th = np.asarray(sm0, f8).T.copy()  # (l, n)
    ts = np.asarray(ts0, f8).T.copy()
    over = np.maximum(th - theta_s, 0.0)
    under = np.maximum(theta_r - th, 0.0)
    corr = ((over - under) * dzw[:, None]).sum(axis=0)
    th = np.clip(th, theta_r, theta_s)
    swe = np.asarray(swe0, f8).copy()
    cw = np.asarray(cw0, f8).copy()
    out = {k: np.zeros((n, nt)) for k in ("et", "ro", "dr", "sm", "gm")}
    sith = sith_split.py_func
    rnet = net_radiation_surface.py_func
    ddm = degree_day_melt.py_func
    for it in range(nt):
        acc = {k: np.zeros(n) for k in out}
        acc["ro"] += corr
        corr = 0.0
        tk = tair[:, it]
        tc = tk - T0
        pkpa = psurf[:, it] * 1e-3
        for _ in range(ns):
            pr = precip[:, it] * h
            fsnow = np.clip((T_RAIN - tc) / (T_RAIN - T_SNOW), 0.0, 1.0)
            snow = pr * fsnow
            rain = pr - snow
            fsc = swe / (swe + SWE_HALF_COVER)
            alb = albedo + (ALBEDO_SNOW - albedo) * fsc
            rn = rnet(swdown[:, it], lwdown[:, it], tk, alb, EMISSIVITY)
            pec, pes = sith(rn, 0.0, tau, tc, pkpa)
            cw = cw + rain * fint
            thr = rain * (1.0 - fint)
            excess = np.maximum(cw - wmax, 0.0)
            thr = thr + excess
            cw = cw - excess
            fwet = np.divide(cw, wmax, out=np.zeros(n), where=wmax > 0.0)
            ei = np.minimum(fwet * pec * h, cw)
            cw = cw - ei
            swe = swe + snow
            melt = np.minimum(ddm(ddf_snow, tc, 0.0, days), swe)
            swe = swe - melt
            esub = np.minimum(fsc * pes * h, swe)
            swe = swe - esub
            fsc = swe / (swe + SWE_HALF_COVER)
            gm = fglac * (1.0 - fsc) * ddm(ddf_ice, tc, 0.0, days)
            imp = 1.0 - FROZEN_IMPEDANCE * np.clip(T0 - ts, 0.0, 1.0)
            px = thr + melt + gm
            deficit = ((theta_s - th) * dzw[:, None]).sum(axis=0)
            dk = deficit * kfac
            den = px + dk
            infl = np.divide(px * dk, den, out=np.zeros(n), where=(px > 0.0) & (dk > 0.0))
            infl = np.minimum(infl, ksat[0] * imp[0] * h * RHO_W)
            ro = px - infl
            for j in range(nl):
                room = (theta_s[j] - th[j]) * dzw[j]
                a = np.minimum(infl, room)
                th[j] += a / dzw[j]
                infl = infl - a
            ro = ro + infl
            es = (1.0 - fsc) * pes * h
            es = es * np.clip((th[0] - theta_r[0]) / (theta_fc[0] - theta_r[0]), 0.0, 1.0)
            es = np.minimum(es, (th[0] - theta_r[0]) * dzw[0])
            th[0] -= es / dzw[0]
            tpot = pec * h * (1.0 - fwet)
            tr = np.zeros(n)
            for j in range(nl):
                thc = theta_wp[j] + THETA_C_FRACTION * (theta_fc[j] - theta_wp[j])
                beta = np.clip((th[j] - theta_wp[j]) / (thc - theta_wp[j]), 0.0, 1.0)
                u = np.minimum(tpot * root[j] * beta, (th[j] - theta_r[j]) * dzw[j])
                u = np.maximum(u, 0.0)
                th[j] -= u / dzw[j]
                tr += u
            kk, _psi, dd = clapp_hornberger.py_func(th, theta_s, b, ksat * imp, psi_sat)
            drain = np.zeros(n)
            for j in range(nl):
                c = 2.0 * b[j] + 3.0
                g = kk[j] * h * RHO_W
                g = g / (1.0 + c * g / np.maximum(th[j] * dzw[j], S_MIN))
                if j < nl - 1:
                    dzm = 0.5 * (dz[j] + dz[j + 1])
                    xeq = (th[j] - th[j + 1]) * dzw[j] * dz[j + 1] / (dz[j] + dz[j + 1])
                    r = 0.5 * (dd[j] + dd[j + 1]) / dzm * (1.0 / dz[j] + 1.0 / dz[j + 1]) * h
                    a = g + xeq * r / (1.0 + r)
                    down = np.minimum(
                        np.minimum(a, (th[j] - theta_r[j]) * dzw[j]),
                        (theta_s[j + 1] - th[j + 1]) * dzw[j + 1],
                    )
                    down = np.maximum(down, 0.0)
                    up = np.maximum(
                        np.maximum(a, -(th[j + 1] - theta_r[j + 1]) * dzw[j + 1]),
                        -(theta_s[j] - th[j]) * dzw[j],
                    )
                    up = np.minimum(up, 0.0)
                    a = np.where(a > 0.0, down, up)
                    th[j] -= a / dzw[j]
                    th[j + 1] += a / dzw[j + 1]
                else:
                    a = np.maximum(np.minimum(g, (th[j] - theta_r[j]) * dzw[j]), 0.0)
                    th[j] -= a / dzw[j]
                    drain += a
            lam = LAMBDA_DRY + LAMBDA_WET_EXTRA * th / theta_s
            half = 0.5 * dz[:, None] / lam
            kint = np.zeros((nl, n))
            kint[:-1] = 1.0 / (half[:-1] + half[1:])
            snowy = swe > 0.0
            ttop = np.where(snowy, np.minimum(tk, T0), tk)
            gtop = 1.0 / (half[0] + np.where(snowy, swe / (RHO_SNOW * LAMBDA_SNOW), 0.0))
            cp = np.zeros((nl, n))
            dp = np.zeros((nl, n))
            for j in range(nl):
                cap_j = ((1.0 - theta_s[j]) * C_SOLID + th[j] * C_WATER) * dz[j]
                kup = gtop if j == 0 else kint[j - 1]
                diag = cap_j + h * (kup + kint[j])
                rhs = cap_j * ts[j]
                if j == 0:
                    rhs = rhs + h * gtop * ttop
                    den = diag
                    dp[j] = rhs / den
                else:
                    low = -h * kup
                    den = diag - low * cp[j - 1]
                    dp[j] = (rhs - low * dp[j - 1]) / den
                cp[j] = -h * kint[j] / den
            ts[nl - 1] = dp[nl - 1]
            for j in range(nl - 2, -1, -1):
                ts[j] = dp[j] - cp[j] * ts[j + 1]
            acc["et"] += ei + esub + es + tr
            acc["ro"] += ro
            acc["dr"] += drain
            acc["sm"] += melt
            acc["gm"] += gm
        for k in out:
            out[k][:, it] = acc[k] / dt
    return (
        th.T.copy(),
        ts.T.copy(),
        swe,
        cw,
        out["et"],
        out["ro"],
        out["dr"],
        out["sm"],
        out["gm"],
    )
