"""Real-data validation tables of xldas (WP3/WP4). Run: ``python benchmarks/validation.py``.

Reads the shared real data (``$XLDAS_SHARED_DATA`` or ``../shared/data``) and prints:

1. Hawaii: skill of SMAP, ASCAT, C3S, SMOS-IC, GLDAS, ERA5, ERA5-Land against the ISMN
   stations, and extended triple collocation;
2. Bondville 1998: open loop vs EnKF vs PF assimilating 5 cm soil moisture every other
   day, scored on the withheld days at 5/20/60 cm and for latent heat; calibration of
   soil parameters on H1 validated on H2;
3. Fürstensee: neutron counts -> soil moisture against the calibration campaigns;
4. Maqu: station statistics and frozen-soil QC;
5. Heihe twin experiment: sub-basin budgets before/after constrained-KF closure;
6. CAMELS: NSE/KGE of routed model runoff vs USGS streamflow, yearly budgets and closure.

``--quick`` shortens the Bondville runs (60 days) and the calibration.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 30)


def hawaii():
    from xldas.validation.hawaii import hawaii_table

    table, tc = hawaii_table()
    print(
        "\n== Hawaii: products vs ISMN stations (daily, 2017-2018; ASCAT ubRMSE after mean/std scaling)"
    )
    print(table.round(3).to_string(index=False))
    print("\n== Hawaii: extended triple collocation (error std in station units, m3 m-3)")
    print(tc.round(3).to_string(index=False))


def bondville(quick: bool):
    from xldas.validation.bondville import bondville_calibration, bondville_experiment

    span = (
        ("1998-04-01T06:00", "1998-05-31T06:00")
        if quick
        else ("1998-01-01T06:00", "1999-01-01T06:00")
    )
    t = time.perf_counter()
    res = bondville_experiment(start=span[0], end=span[1], members=16)
    print(
        f"\n== Bondville {span[0][:10]}..{span[1][:10]}: withheld-day skill ({time.perf_counter() - t:.0f} s)"
    )
    print(res.skill_sm.to_dataframe().round(4).to_string())
    print("\n-- latent heat (daily means, W m-2) on withheld days")
    print(res.skill_le.to_dataframe().round(3).to_string())
    t = time.perf_counter()
    cal = bondville_calibration(maxiter=2 if quick else 6, popsize=3 if quick else 4)
    print(
        f"\n== Bondville calibration of b and ksat on H1 (5 cm, weekly; {time.perf_counter() - t:.0f} s): {cal['result'].params}"
    )
    rows = {
        k: {m: float(cal[k][m]) for m in cal[k].data_vars}
        for k in ("calibration_default", "validation_default", "validation_calibrated")
    }
    print(pd.DataFrame(rows).T.round(4).to_string())


def fuerstensee():
    from xldas.io import calibrate_n0, crns_soil_moisture, read_crns, read_crns_samples
    from xldas.validation.bondville import shared_data_dir

    d = shared_data_dir() / "crns_fuerstensee"
    crns, s = (
        read_crns(d / "FSC001_time_series.csv"),
        read_crns_samples(d / "FSCD001_calibration.csv"),
    )
    cals = [calibrate_n0(crns, s.where(s.time == t, drop=True)) for t in np.unique(s.time.values)]
    n0 = float(np.mean([c["n0"] for c in cals]))
    rows = []
    for c in cals:
        own = crns_soil_moisture(crns, c["n0"], c["bulk_density"], c["lattice_water"], c["soc"])
        both = crns_soil_moisture(crns, n0, c["bulk_density"], c["lattice_water"], c["soc"])
        rows.append(
            {
                "campaign": str(c["time"])[:10],
                "samples_sm": c["sm"],
                "n0_campaign": c["n0"],
                "sm_own_n0": float(own.sel(time=c["time"], method="nearest")),
                "sm_mean_n0": float(both.sel(time=c["time"], method="nearest")),
            }
        )
    print(
        "\n== Fürstensee CRNS: N0 per campaign and soil moisture vs samples (no incoming correction: f_i = 1)"
    )
    print(pd.DataFrame(rows).round(3).to_string(index=False))


def maqu():
    from xldas.io import frozen_soil_flags, read_ismn
    from xldas.validation.bondville import shared_data_dir

    ds = read_ismn(
        shared_data_dir() / "ismn_samples" / "zips" / "Data_header_values.zip", network="MAQU"
    )
    rows = []
    for k in range(ds.sizes["sensor"]):
        sm = ds.sm.isel(sensor=k).dropna("time")
        fl = frozen_soil_flags(sm)
        d = ds.sm_flag.isel(sensor=k).sel(time=sm.time).str.contains("D0").values
        rows.append(
            {
                "station": str(ds.station[k].values),
                "n": int(sm.size),
                "mean": float(sm.mean()),
                "std": float(sm.std()),
                "frozen_flagged": int(fl.sum()),
                "ismn_D_flags": int(d.sum()),
                "agreement": float((fl.values & d).sum() / max(fl.values.sum(), 1)),
            }
        )
    print("\n== Maqu (Tibetan Plateau) 5 cm: statistics and frozen-soil QC")
    print(pd.DataFrame(rows).round(3).to_string(index=False))


def camels():
    from xldas.budget import camels_experiment
    from xldas.validation.bondville import shared_data_dir

    rows = []
    for g in ("01022500", "01547700", "02064000", "03015500"):
        r = camels_experiment(shared_data_dir() / "camels_us_4basins", g)
        rows.append(
            {
                "gauge": g,
                "k_days": r["k_days"],
                **{f"cal_{m}": float(r["skill_cal"][m]) for m in ("nse", "kge", "bias")},
                **{f"val_{m}": float(r["skill_val"][m]) for m in ("nse", "kge", "bias")},
                "mean_residual_prior_mm": float(r["closed"].residual_prior.mean()),
            }
        )
        print(f"\n-- CAMELS {g}: yearly budget (mm; Q observed), before and after closure")
        print(r["budget"].to_dataframe().round(1).to_string())
        print(r["closed"][["P", "ET", "Q", "dS", "residual"]].to_dataframe().round(1).to_string())
    print(
        "\n== CAMELS: daily streamflow of routed land-model runoff (calibration 2000-01..2001-09, validation after)"
    )
    print(pd.DataFrame(rows).round(3).to_string(index=False))


def heihe():
    import xldas
    from xldas.budget import heihe_budget

    r = heihe_budget(xldas.demo.heihe_osse(resolution=0.25, days=30))
    cols = ["P", "ET", "Q", "dS", "residual"]
    for k in ("truth", "observed", "closed"):
        print(f"\n== Heihe twin, 30 days, {k} (mm)")
        print(r[k][cols].to_dataframe().round(2).to_string())


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    hawaii()
    fuerstensee()
    maqu()
    heihe()
    camels()
    bondville(args.quick)
