"""Log metrics and params to the ``repro run`` this process runs under, and read its seed
and params.

    import repro

    repro.seed()                      # the run's seed (REPRO_SEED), or the default outside repro
    lr = repro.params().get("optim.lr", 0.01)
    for step in range(10):
        repro.log_metric("loss", 1.0 / (step + 1), step=step)
    repro.log_param("arch", "resnet18")

``repro run`` sets ``REPRO_METRICS`` (a file this module appends JSON lines to),
``REPRO_PARAMS`` (a JSON file of the flattened params) and ``REPRO_SEED``. Outside a run the
functions do nothing, say so once with a ``RuntimeWarning``, and return the defaults, so the
same script runs with and without repro. Bad arguments raise inside and outside a run alike,
so a script that works on a laptop does not fail first under repro.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import warnings
from numbers import Integral, Real
from typing import Any, Dict, Optional, Union

__all__ = ["in_run", "log_metric", "log_param", "params", "seed"]

ParamValue = Union[str, int, float, bool]

_lock = threading.Lock()
_warned = False
_params: Optional[Dict[str, Any]] = None


def in_run() -> bool:
    """Whether this process runs under ``repro run`` (``REPRO_METRICS`` is set)."""
    return bool(os.environ.get("REPRO_METRICS"))


def _outside(what: str, depth: int) -> None:
    """Warns once; ``depth`` is how many frames of this module lie between the warning and
    the caller's line, so that the warning names the script's line."""
    global _warned
    with _lock:
        if _warned:
            return
        _warned = True
    warnings.warn(
        f"repro: not running under `repro run` ({what}); repro.log_metric and repro.log_param "
        "do nothing and repro.seed()/repro.params() give their defaults. Start the script with "
        "`repro run -- python SCRIPT` to record them.",
        RuntimeWarning,
        stacklevel=depth + 2,
    )


def _name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"repro.log_{kind}: the name must be a non-empty string, got {name!r}")
    return name


def _append(record: Dict[str, Any]) -> None:
    path = os.environ.get("REPRO_METRICS")
    if not path:
        _outside("REPRO_METRICS is not set", 2)
        return
    # One write of one line per record, in append mode: lines from threads and from the
    # processes of one run (torchrun's ranks) never interleave within a line.
    line = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
    with _lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def log_metric(name: str, value: float, step: Optional[int] = None) -> None:
    """Records one point of metric ``name``: ``value`` at ``step`` (0 when not given),
    with the current time. NaN and infinities are kept (as MLflow keeps them).

    Raises ``TypeError`` for a name that is not a non-empty string, a value that is not a
    real number, or a step that is not an integer."""
    _name("metric", name)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"repro.log_metric({name!r}): the value must be a real number, got {value!r}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, Integral)):
        raise TypeError(f"repro.log_metric({name!r}): step must be an integer, got {step!r}")
    number = float(value)
    shown: Union[float, str] = number
    if math.isnan(number):
        shown = "NaN"
    elif math.isinf(number):
        shown = "Infinity" if number > 0 else "-Infinity"
    _append(
        {
            "metric": name,
            "value": shown,
            "step": int(step) if step is not None else 0,
            "timestamp": int(time.time() * 1000),
        }
    )


def log_param(name: str, value: ParamValue) -> None:
    """Records param ``name`` with ``value`` (a string, number or bool; anything else
    raises ``TypeError``, so a param never depends on an object's ``repr``)."""
    _name("param", name)
    if not isinstance(value, (str, int, float, bool)):
        raise TypeError(
            f"repro.log_param({name!r}): the value must be a string, number or bool, got {type(value).__name__}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        value = repr(value)
    _append({"param": name, "value": value})


def seed(default: int = 0) -> int:
    """The run's seed (``REPRO_SEED``); ``default`` outside ``repro run``."""
    raw = os.environ.get("REPRO_SEED")
    if raw is None or not raw.strip():
        _outside("REPRO_SEED is not set", 1)
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"REPRO_SEED must be an integer, got {raw!r}") from None


def params() -> Dict[str, Any]:
    """The run's params, flattened to dotted keys (``{"model.depth": 4}``), from the
    ``REPRO_PARAMS`` file; an empty dict outside ``repro run``. Each call gives a fresh copy."""
    global _params
    path = os.environ.get("REPRO_PARAMS")
    if not path:
        _outside("REPRO_PARAMS is not set", 1)
        return {}
    with _lock:
        if _params is None:
            try:
                with open(path, encoding="utf-8") as f:
                    loaded = json.load(f)
            except (OSError, ValueError) as e:
                raise RuntimeError(f"repro: cannot read the params file REPRO_PARAMS={path}: {e}") from None
            if not isinstance(loaded, dict):
                raise RuntimeError(f"repro: the params file REPRO_PARAMS={path} holds no JSON object")
            _params = loaded
        return dict(_params)
