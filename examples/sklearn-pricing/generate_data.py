#!/usr/bin/env python3
"""Generate a synthetic house-pricing CSV, deterministically from a seed.

Usage: python generate_data.py [--seed 0] [--rows 5000] [--out data/train.csv]

Only numpy is needed. The same seed, row count and numpy version always
produce a byte-identical file.
"""
import argparse
import os
import sys

import numpy as np

COLUMNS = ["sqft", "bedrooms", "bathrooms", "age_years", "distance_km", "lot_sqft", "price"]


def generate(seed, rows):
    rng = np.random.default_rng(seed)
    sqft = np.clip(rng.normal(1800.0, 600.0, rows), 400.0, 6000.0)
    bedrooms = np.clip(np.round(sqft / 600.0 + rng.normal(0.0, 0.7, rows)), 1, 7)
    bathrooms = np.clip(np.round(bedrooms * 0.6 + rng.normal(0.3, 0.5, rows)), 1, 5)
    age_years = rng.integers(0, 100, rows).astype(float)
    distance_km = rng.gamma(2.0, 6.0, rows)
    lot_sqft = np.clip(sqft * rng.lognormal(1.0, 0.4, rows), 800.0, None)
    price = (
        50_000.0
        + 140.0 * sqft
        + 8_000.0 * bedrooms
        + 12_000.0 * bathrooms
        - 900.0 * age_years
        + 4.0 * age_years ** 2  # old houses regain some value
        - 30_000.0 * np.log1p(distance_km)
        + 6.0 * np.sqrt(lot_sqft) * 10.0
        + rng.normal(0.0, 25_000.0, rows)
    )
    price = np.clip(price, 30_000.0, None)
    return np.column_stack([sqft, bedrooms, bathrooms, age_years, distance_km, lot_sqft, price])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--rows", type=int, default=5000, help="number of rows (default 5000)")
    ap.add_argument("--out", default=os.path.join("data", "train.csv"),
                    help="output CSV path (default data/train.csv)")
    args = ap.parse_args(argv)
    if args.rows < 1:
        ap.error("--rows must be at least 1")

    data = generate(args.seed, args.rows)
    parent = os.path.dirname(args.out)
    if parent:
        os.makedirs(parent, exist_ok=True)
    # Fixed formats and "\n" line endings keep the bytes identical across platforms.
    fmt = ["%.1f", "%d", "%d", "%d", "%.3f", "%.1f", "%.2f"]
    with open(args.out, "w", newline="\n", encoding="utf-8") as f:
        f.write(",".join(COLUMNS) + "\n")
        for row in data:
            f.write(",".join(fm % v for fm, v in zip(fmt, row)) + "\n")
    print(f"wrote {args.rows} rows to {args.out} (seed={args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
