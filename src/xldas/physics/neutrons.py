"""Cosmic-ray neutron sensor (CRNS) forward model: Desilets et al. (2010) count rate and its
inverse, count-rate corrections, measurement depths (Franz et al. 2012; Schrön et al. 2017)
and the vertical weighting that maps a layered soil-moisture state to one neutron count.

Every function takes numbers, NumPy arrays or DataArrays (lazy on dask; units converted on
entry; CF attributes and ``history`` on exit). Neutron count rates are in counts per hour
(unit ``h-1``). Equations: SCIENCE.md §B10.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xldas._xr import apply_kernel
from xldas.errors import DimensionError, ParameterRangeError
from xldas.physics import _neutron_kernels as K
from xldas.physics._common import dispatch, entry, single_chunk

__all__ = [
    "absolute_humidity",
    "biomass_correction",
    "cosmic_ray_neutrons",
    "cosmic_ray_soil_moisture",
    "crns_vertical_weights",
    "crns_weighted_sm",
    "d86",
    "franz_effective_depth",
    "neutron_corrections",
]

_N_ATTRS = {
    "units": "h-1",
    "long_name": "corrected epithermal neutron count rate (counts per hour)",
}
_SM_ATTRS = {
    "units": "m3 m-3",
    "standard_name": "volume_fraction_of_condensed_water_in_soil",
    "long_name": "volumetric soil moisture (cosmic-ray neutron sensor)",
}


def _soil_args(bulk_density, lattice_water, soc):
    return (
        entry(bulk_density, "g cm-3", "bulk_density", 0.1, 2.65),
        entry(lattice_water, "g g-1", "lattice_water", 0.0, 1.0),
        entry(soc, "g g-1", "soc", 0.0, 1.0),
    )


def cosmic_ray_neutrons(
    sm, n0, bulk_density, lattice_water=0.0, soc=0.0, *, engine: str | None = None
):
    """Neutron count rate over soil of moisture ``sm`` (Desilets et al. 2010).

    N = N₀·[a₀/(θ_g + θ_off + a₂) + a₁], θ_g = θ_v·ρ_w/ρ_b, θ_off = τ_lattice + 0.556·SOC.

    Parameters
    ----------
    sm : volumetric soil moisture θ_v (m3 m-3), footprint average.
    n0 : count rate over dry soil N₀ (counts per hour), calibrated per site.
    bulk_density : dry bulk density ρ_b (g cm-3).
    lattice_water : lattice water τ (g g-1).
    soc : soil organic carbon (g g-1).

    Returns
    -------
    Corrected count rate (counts per hour), named ``neutron_count``.

    References
    ----------
    Desilets D., Zreda M., Ferré T.P.A. (2010) WRR 46:W11505.

    Examples
    --------
    >>> from xldas.physics import cosmic_ray_neutrons
    >>> round(float(cosmic_ray_neutrons(0.28, n0=1.0, bulk_density=1.4)), 6)
    0.628508
    """
    return apply_kernel(
        dispatch(K.neutrons_kernel, K.neutrons_np, engine),
        entry(sm, "m3 m-3", "sm"),
        entry(n0, "h-1", "n0", 0.0),
        *_soil_args(bulk_density, lattice_water, soc),
        output_dtypes=[np.float64],
        names=["neutron_count"],
        attrs=[_N_ATTRS],
        history="cosmic_ray_neutrons (Desilets et al. 2010)",
    )


def cosmic_ray_soil_moisture(
    neutron_count, n0, bulk_density, lattice_water=0.0, soc=0.0, *, engine: str | None = None
):
    """Volumetric soil moisture from a corrected neutron count (inverse Desilets et al. 2010).

    θ_v = (a₀/(N/N₀ − a₁) − a₂ − θ_off)·ρ_b/ρ_w; NaN where N/N₀ ≤ a₁ = 0.372.

    Parameters
    ----------
    neutron_count : corrected count rate N (counts per hour).
    n0, bulk_density, lattice_water, soc : as in :func:`cosmic_ray_neutrons`.

    Returns
    -------
    Volumetric soil moisture (m3 m-3), named ``sm``.

    References
    ----------
    Desilets D., Zreda M., Ferré T.P.A. (2010) WRR 46:W11505.

    Examples
    --------
    >>> from xldas.physics import cosmic_ray_soil_moisture
    >>> round(float(cosmic_ray_soil_moisture(0.7, n0=1.0, bulk_density=1.0)), 6)
    0.131341
    """
    return apply_kernel(
        dispatch(K.neutron_sm_kernel, K.neutron_sm_np, engine),
        entry(neutron_count, "h-1", "neutron_count", 0.0),
        entry(n0, "h-1", "n0", 0.0),
        *_soil_args(bulk_density, lattice_water, soc),
        output_dtypes=[np.float64],
        names=["sm"],
        attrs=[_SM_ATTRS],
        history="cosmic_ray_soil_moisture (Desilets et al. 2010, inverted)",
    )


def neutron_corrections(
    pressure_hpa=None,
    humidity=None,
    incoming=None,
    *,
    pressure_ref_hpa=1013.25,
    beta=0.0076,
    humidity_ref=0.0,
    incoming_ref=None,
    cutoff_rigidity_gv=None,
    engine: str | None = None,
):
    """Correction factors (f_p, f_wv, f_i) that multiply raw neutron counts.

    f_p = exp(β(P − P_ref)); f_wv = 1 + 0.0054(ρ_v − ρ_v,ref);
    f_i = 1/(1 + RcCorr·(I/I_ref − 1)) with RcCorr = −0.075(R_c − 4.49) + 1 (RcCorr = 1, i.e.
    f_i = I_ref/I, when ``cutoff_rigidity_gv`` is None). A factor whose input is None is 1.

    Parameters
    ----------
    pressure_hpa : barometric pressure (hPa; a DataArray in Pa is converted).
    humidity : absolute humidity ρ_v (g m-3; see :func:`absolute_humidity`).
    incoming : incoming neutron intensity I (neutron-monitor count rate).
    pressure_ref_hpa, beta : reference pressure (hPa) and attenuation coefficient (hPa-1).
    humidity_ref : reference absolute humidity (g m-3).
    incoming_ref : reference incoming intensity (required with ``incoming``).
    cutoff_rigidity_gv : site cut-off rigidity R_c (GV) for the Hawdon et al. (2014) scaling.

    References
    ----------
    Zreda M. et al. (2012) HESS 16:4079; Rosolem R. et al. (2013) J. Hydrometeorol. 14:1659;
    Hawdon A., McJannet D., Wallace J. (2014) WRR 50:5029.

    Examples
    --------
    >>> from xldas.physics import neutron_corrections
    >>> f_p, f_wv, f_i = neutron_corrections(900.0, 10.0)
    >>> round(float(f_p), 6), round(float(f_wv), 6), float(f_i)
    (0.422866, 1.054, 1.0)
    """
    if incoming is not None and incoming_ref is None:
        raise ParameterRangeError(
            "incoming_ref (reference incoming intensity) is required with incoming"
        )
    p_ref = entry(pressure_ref_hpa, "hPa", "pressure_ref_hpa", 0.0)
    p = p_ref if pressure_hpa is None else entry(pressure_hpa, "hPa", "pressure_hpa", 0.0)
    h_ref = entry(humidity_ref, "g m-3", "humidity_ref", 0.0)
    h = h_ref if humidity is None else entry(humidity, "g m-3", "humidity", 0.0)
    if incoming is None:
        i, i_ref = 1.0, 1.0
    else:
        i = entry(incoming, "1", "incoming", 0.0)
        i_ref = entry(incoming_ref, "1", "incoming_ref", 0.0)
    rc = (
        K.RC_REF
        if cutoff_rigidity_gv is None
        else entry(cutoff_rigidity_gv, "GV", "cutoff_rigidity_gv", 0.0)
    )
    return apply_kernel(
        dispatch(K.corrections_kernel, K.corrections_np, engine),
        p,
        p_ref,
        entry(beta, "hPa-1", "beta", 0.0),
        h,
        h_ref,
        i,
        i_ref,
        rc,
        output_core_dims=((), (), ()),
        output_dtypes=[np.float64] * 3,
        names=["f_p", "f_wv", "f_i"],
        attrs=[
            {"units": "1", "long_name": "neutron count correction for barometric pressure"},
            {"units": "1", "long_name": "neutron count correction for atmospheric water vapour"},
            {
                "units": "1",
                "long_name": "neutron count correction for incoming cosmic-ray intensity",
            },
        ],
        history="neutron_corrections (Zreda et al. 2012, Rosolem et al. 2013, Hawdon et al. 2014)",
    )


def biomass_correction(biomass, *, engine: str | None = None):
    """Biomass correction f_veg = 1/(1 − 0.009·AGB) of neutron counts (Baatz et al. 2015).

    Parameters
    ----------
    biomass : dry above-ground biomass AGB (kg m-2).

    Examples
    --------
    >>> from xldas.physics import biomass_correction
    >>> round(float(biomass_correction(10.0)), 6)
    1.098901
    """
    return apply_kernel(
        dispatch(K.biomass_correction_kernel, K.biomass_correction_np, engine),
        entry(biomass, "kg m-2", "biomass", 0.0, 100.0),
        output_dtypes=[np.float64],
        names=["f_veg"],
        attrs=[{"units": "1", "long_name": "neutron count correction for above-ground biomass"}],
        history="biomass_correction (Baatz et al. 2015)",
    )


def absolute_humidity(vapour_pressure_pa, temperature_k, *, engine: str | None = None):
    """Absolute humidity ρ_v = 1000·e/(R_v·T) in g m-3, for :func:`neutron_corrections`.

    Parameters
    ----------
    vapour_pressure_pa : water vapour pressure e (Pa).
    temperature_k : air temperature (K; a DataArray in °C is converted).

    Examples
    --------
    >>> from xldas.physics import absolute_humidity
    >>> round(float(absolute_humidity(1500.0, 293.15)), 4)
    11.0874
    """
    return apply_kernel(
        dispatch(K.absolute_humidity_kernel, K.absolute_humidity_np, engine),
        entry(vapour_pressure_pa, "Pa", "vapour_pressure_pa", 0.0),
        entry(temperature_k, "K", "temperature_k", 0.0),
        output_dtypes=[np.float64],
        names=["absolute_humidity"],
        attrs=[{"units": "g m-3", "long_name": "absolute humidity (water vapour density)"}],
        history="absolute_humidity",
    )


def d86(theta, bulk_density, distance_m=0.0, *, engine: str | None = None):
    """Depth (cm) above which 86 % of detected neutrons originate (Schrön et al. 2017).

    D86 = (1/ρ_b)·[8.321 + 0.14249·(0.96655 + e^(−r/100))·(20 + θ)/(0.0429 + θ)].

    Parameters
    ----------
    theta : total volumetric water incl. lattice water and SOC equivalents (m3 m-3).
    bulk_density : dry bulk density (g cm-3).
    distance_m : distance from the sensor (m).

    Examples
    --------
    >>> from xldas.physics import d86
    >>> round(float(d86(0.20, 1.4)), 4)
    22.5886
    """
    return apply_kernel(
        dispatch(K.d86_kernel, K.d86_np, engine),
        entry(theta, "m3 m-3", "theta", 0.0),
        entry(bulk_density, "g cm-3", "bulk_density", 0.1, 2.65),
        entry(distance_m, "m", "distance_m", 0.0),
        output_dtypes=[np.float64],
        names=["d86"],
        attrs=[{"units": "cm", "long_name": "CRNS penetration depth D86"}],
        history="d86 (Schrön et al. 2017)",
    )


def franz_effective_depth(sm, bulk_density, lattice_water=0.0, *, engine: str | None = None):
    """Effective measurement depth z* (cm) of a CRNS (Franz et al. 2012).

    z* = 5.8/(ρ_b·τ + θ + 0.0829); ≈70 cm over dry soil, ≈12 cm over wet soil.

    Parameters
    ----------
    sm : volumetric soil moisture (m3 m-3).
    bulk_density : dry bulk density (g cm-3).
    lattice_water : lattice water τ (g g-1).

    References
    ----------
    Franz T.E. et al. (2012) WRR 48:W08515.

    Examples
    --------
    >>> from xldas.physics import franz_effective_depth
    >>> round(float(franz_effective_depth(0.20, 1.4, 0.03)), 4)
    17.8516
    """
    return apply_kernel(
        dispatch(K.franz_depth_kernel, K.franz_depth_np, engine),
        entry(sm, "m3 m-3", "sm"),
        entry(bulk_density, "g cm-3", "bulk_density", 0.1, 2.65),
        entry(lattice_water, "g g-1", "lattice_water", 0.0, 1.0),
        output_dtypes=[np.float64],
        names=["z_star"],
        attrs=[
            {"units": "cm", "long_name": "CRNS effective measurement depth (Franz et al. 2012)"}
        ],
        history="franz_effective_depth (Franz et al. 2012)",
    )


def _depth_bottom(obj, depth_bottom, layer_dim: str):
    if depth_bottom is None:
        if isinstance(obj, xr.DataArray) and "depth_bottom" in obj.coords:
            depth_bottom = obj["depth_bottom"]
        else:
            raise DimensionError(f"depth_bottom (m, along {layer_dim!r}) is required")
    if isinstance(depth_bottom, xr.DataArray):
        depth_bottom = depth_bottom.reset_coords(drop=True)
        if "units" not in depth_bottom.attrs:
            depth_bottom = depth_bottom.assign_attrs(units="m")
    return entry(depth_bottom, "m", "depth_bottom", 0.0)


def crns_vertical_weights(
    depth_bottom, d86_cm, *, layer_dim: str = "layer", engine: str | None = None
):
    """Normalised CRNS weights of soil layers, w_j ∝ ∫_layer exp(−2d/D86) dd.

    Parameters
    ----------
    depth_bottom : layer bottom depths (m), along ``layer_dim`` (the last axis of plain
        arrays); the first layer starts at the surface. A DataArray without units is taken in m.
    d86_cm : penetration depth D86 (cm), see :func:`d86`.
    layer_dim : name of the layer dimension.

    Returns
    -------
    Weights along ``layer_dim`` summing to 1.

    References
    ----------
    Schrön M. et al. (2017) HESS 21:5009–5030.

    Examples
    --------
    >>> from xldas.physics import crns_vertical_weights
    >>> w = crns_vertical_weights([0.05, 0.3, 1.0, 2.0], 22.0)
    >>> [round(float(x), 4) for x in w]
    [0.3653, 0.5693, 0.0653, 0.0001]
    """
    depth_bottom = single_chunk(_depth_bottom(None, depth_bottom, layer_dim), layer_dim)
    return apply_kernel(
        dispatch(K.vertical_weights_kernel, K.vertical_weights_np, engine),
        depth_bottom,
        entry(d86_cm, "cm", "d86_cm", 0.0),
        input_core_dims=[[layer_dim], []],
        output_core_dims=[[layer_dim]],
        output_dtypes=[np.float64],
        names=["crns_weight"],
        attrs=[{"units": "1", "long_name": "CRNS vertical weight of soil layer"}],
        history="crns_vertical_weights (Schrön et al. 2017)",
    )


def crns_weighted_sm(
    sm,
    depth_bottom=None,
    bulk_density=1.4,
    lattice_water=0.0,
    soc=0.0,
    distance_m=0.0,
    n_iter: int = 3,
    *,
    layer_dim: str = "layer",
    engine: str | None = None,
):
    """The soil moisture a CRNS sees: D86-weighted average of a layered profile.

    θ̄ = Σ_j w_j θ_j with the weights of :func:`crns_vertical_weights` for
    D86(θ̄ + θ_off·ρ_b, ρ_b, r); since D86 depends on θ̄, ``n_iter`` fixed-point iterations
    start from the top-layer value. Feed the result to :func:`cosmic_ray_neutrons`.

    Parameters
    ----------
    sm : layered volumetric soil moisture (m3 m-3) along ``layer_dim`` (last axis of plain arrays).
    depth_bottom : layer bottom depths (m); defaults to the ``depth_bottom`` coordinate of ``sm``.
    bulk_density : dry bulk density (g cm-3).
    lattice_water, soc : lattice water and soil organic carbon (g g-1).
    distance_m : distance from the sensor (m) at which D86 is taken.
    n_iter : number of fixed-point iterations (2–3 suffice).

    Examples
    --------
    >>> from xldas.physics import crns_weighted_sm
    >>> round(float(crns_weighted_sm([0.2, 0.2, 0.3], [0.05, 0.3, 1.0])), 6)
    0.206652
    """
    if int(n_iter) < 1:
        raise ParameterRangeError(f"n_iter must be at least 1; got {n_iter}")
    db = single_chunk(_depth_bottom(sm, depth_bottom, layer_dim), layer_dim)
    if isinstance(sm, xr.DataArray):
        if layer_dim not in sm.dims:
            raise DimensionError(f"sm has no {layer_dim!r} dimension; dims are {tuple(sm.dims)}")
        sm = single_chunk(sm.drop_vars("depth_bottom", errors="ignore"), layer_dim)
    return apply_kernel(
        dispatch(K.weighted_sm_kernel, K.weighted_sm_np, engine),
        entry(sm, "m3 m-3", "sm"),
        db,
        *_soil_args(bulk_density, lattice_water, soc),
        entry(distance_m, "m", "distance_m", 0.0),
        int(n_iter),
        input_core_dims=[[layer_dim], [layer_dim], [], [], [], [], []],
        output_dtypes=[np.float64],
        names=["sm_crns"],
        attrs=[
            {
                **_SM_ATTRS,
                "long_name": "soil moisture seen by a cosmic-ray neutron sensor (D86-weighted)",
            }
        ],
        history="crns_weighted_sm (Schrön et al. 2017 vertical weighting)",
    )
