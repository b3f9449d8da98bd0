#!/usr/bin/env python3
"""Train a RandomForestRegressor on the synthetic house-pricing data.

Designed to run under `repro run`, which passes its inputs through the
environment; every variable is optional, so the script also runs on its own:

  REPRO_SEED     integer seed for the split and the forest (default 0)
  REPRO_PARAMS   path to a flat JSON object with dotted keys, e.g.
                 {"model.n_estimators": 50, "model.max_depth": 6, "split.test_size": 0.2}
  REPRO_METRICS  path to a JSON-lines file; metrics and params are appended to it

Usage: python train.py [--data data/train.csv] [--out model.pkl]
"""
import argparse
import csv
import json
import math
import os
import pickle
import sys
import time

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

TARGET = "price"

# Defaults used when REPRO_PARAMS is unset or omits a key (they match params.yaml).
DEFAULTS = {
    "model.n_estimators": 50,
    "model.max_depth": 6,
    "model.min_samples_leaf": 2,
    "split.test_size": 0.2,
}


def fail(msg):
    print(f"train.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def flatten(obj, prefix=""):
    """Flatten nested dicts to dotted keys (REPRO_PARAMS should already be flat)."""
    out = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def as_int(name, value, allow_none=False):
    if allow_none and (value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null"))):
        return None
    if isinstance(value, bool):
        fail(f"{name} must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    fail(f"{name} must be an integer, got {value!r}")


def as_float(name, value):
    if isinstance(value, bool):
        fail(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        fail(f"{name} must be a number, got {value!r}")


def load_params():
    params = dict(DEFAULTS)
    path = os.environ.get("REPRO_PARAMS")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                given = json.load(f)
        except (OSError, ValueError) as e:
            fail(f"cannot read REPRO_PARAMS file {path}: {e}")
        if not isinstance(given, dict):
            fail(f"REPRO_PARAMS file {path} must hold a JSON object")
        for key, value in flatten(given).items():
            if key not in DEFAULTS:
                print(f"train.py: warning: ignoring unknown param {key}", file=sys.stderr)
                continue
            params[key] = value
    resolved = {
        "model.n_estimators": as_int("model.n_estimators", params["model.n_estimators"]),
        "model.max_depth": as_int("model.max_depth", params["model.max_depth"], allow_none=True),
        "model.min_samples_leaf": as_int("model.min_samples_leaf", params["model.min_samples_leaf"]),
        "split.test_size": as_float("split.test_size", params["split.test_size"]),
    }
    if resolved["model.n_estimators"] < 1:
        fail("model.n_estimators must be at least 1")
    if not 0.0 < resolved["split.test_size"] < 1.0:
        fail("split.test_size must be between 0 and 1")
    return resolved, path


def load_seed():
    raw = os.environ.get("REPRO_SEED", "").strip()
    if not raw:
        return 0
    try:
        seed = int(raw)
    except ValueError:
        fail(f"REPRO_SEED must be an integer, got {raw!r}")
    if not 0 <= seed < 2**32:
        fail(f"REPRO_SEED must be in [0, 2^32), got {seed}")
    return seed


def load_csv(path):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows = [[float(x) for x in row] for row in reader if row]
    except (OSError, StopIteration, ValueError) as e:
        fail(f"cannot load {path}: {e}")
    if TARGET not in header:
        fail(f"{path} has no '{TARGET}' column")
    if len(rows) < 10:
        fail(f"{path} has too few rows ({len(rows)})")
    data = np.asarray(rows, dtype=np.float64)
    t = header.index(TARGET)
    features = [h for i, h in enumerate(header) if i != t]
    return np.delete(data, t, axis=1), data[:, t], features


def append_metrics(path, records):
    with open(path, "a", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train a RandomForestRegressor on house prices.")
    ap.add_argument("--data", default=os.path.join("data", "train.csv"), help="training CSV (default data/train.csv)")
    ap.add_argument("--out", default="model.pkl", help="where to write the pickled model (default model.pkl)")
    args = ap.parse_args(argv)

    started = time.perf_counter()
    seed = load_seed()
    params, params_path = load_params()
    X, y, features = load_csv(args.data)

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=params["split.test_size"], random_state=seed
    )
    model = RandomForestRegressor(
        n_estimators=params["model.n_estimators"],
        max_depth=params["model.max_depth"],
        min_samples_leaf=params["model.min_samples_leaf"],
        random_state=seed,
        n_jobs=None,
    )
    model.fit(X_train, y_train)
    pred = model.predict(X_test)
    rmse = math.sqrt(mean_squared_error(y_test, pred))
    r2 = r2_score(y_test, pred)

    parent = os.path.dirname(args.out)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(args.out, "wb") as f:
        pickle.dump(model, f, protocol=5)

    metrics_path = os.environ.get("REPRO_METRICS")
    if metrics_path:
        append_metrics(metrics_path, [
            {"metric": "rmse", "value": rmse, "step": 0},
            {"metric": "r2", "value": r2, "step": 0},
            {"param": "n_train", "value": str(len(y_train))},
            {"param": "n_test", "value": str(len(y_test))},
            {"param": "n_features", "value": str(len(features))},
        ])

    elapsed = time.perf_counter() - started
    print(f"seed={seed} params={json.dumps(params, sort_keys=True)}"
          + (f" (from {params_path})" if params_path else " (defaults)"))
    print(f"data={args.data} rows={len(y)} train={len(y_train)} test={len(y_test)} features={','.join(features)}")
    print(f"rmse={rmse:.2f} r2={r2:.4f}")
    print(f"wrote {args.out} in {elapsed:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
