"""The rule every frontend applies to a model's float parameters and to its type options.

A parameter that is a short binary fraction is taken exactly (it is what the trained or
quantized model computes with); any other value is rounded to a type the user gives, per
layer or for all, or refused naming the value. One rule, so that a model converts the same
way whichever tool saved it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..fixed import FixedPointError, FixedType, parse_type
from ..torch_common import ConversionError


def is_short_fraction(v: float) -> bool:
    """A binary fraction of at most 16 significant bits and 32 fraction bits."""
    n, d = float(v).as_integer_ratio()
    while n and n % 2 == 0:
        n //= 2
    return abs(n).bit_length() <= 16 and d <= 2**32


def first_bad(a: np.ndarray, ok: np.ndarray) -> float:
    """The first value of ``a`` where ``ok`` is False (for a message)."""
    idx = tuple(int(i) for i in np.argwhere(~ok)[0]) if a.ndim else ()
    return float(a[idx]) if a.ndim else float(a)


def option_type(options: dict, option: str, keys: Sequence[str], used: dict[str, set[str]],
                error: Callable[[str], Exception], where: str = "") -> FixedType | None:
    """The type a type option gives a layer: the option's type string, or, for a dict by layer
    name, the entry of the first of ``keys`` it has (recorded in ``used[option]``, so that
    entries no layer reads can be refused, see :func:`refuse_unused_entries`); None when it
    gives none. A malformed type is refused as ``error(f"{option}{where}: ...")``."""
    spec = options.get(option)
    if isinstance(spec, dict):
        key = next((k for k in keys if k in spec), None)
        if key is None:
            return None
        used[option].add(key)
        spec = spec[key]
    if spec is None:
        return None
    try:
        return parse_type(spec)
    except FixedPointError as e:
        raise error(f"{option}{where}: {e}") from None


def refuse_unused_entries(options: dict, used: dict[str, set[str]], names: Sequence[str], what: str) -> None:
    """Refuse the entries of dict-valued type options (``names``) that no layer read: a typo in
    a layer name would otherwise leave that layer with another type, silently."""
    for o in names:
        if isinstance(options.get(o), dict):
            idle = sorted(set(options[o]) - used[o])
            if idle:
                raise ConversionError(f"{o} has entries for {what} that do not use it: {idle}")


def exact_or_typed(values, what: str, option: str, type_for: Callable, error: Callable, name: str, advice: str):
    """A frontend's float parameters: ``(values, None)`` when every value is a short binary
    fraction (taken exactly), else ``(values, the type of option)`` (or of ``weight_type``) to
    round them to; refused naming the first offending value when neither is given.
    ``type_for(option)`` and ``error(message)`` are the frontend's own, ``name`` its layer or
    node, ``advice`` how to quantize in the source tool."""
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise error(f"{what} has a non-finite value {first_bad(v, np.isfinite(v))}")
    short = np.vectorize(is_short_fraction, otypes=[bool])(v) if v.size else np.ones(v.shape, bool)
    if np.all(short):
        return v, None
    t = type_for(option) or (type_for("weight_type") if option != "weight_type" else None)
    if t is None:
        raise error(f"{what} has the value {first_bad(v, short)!r}, which is not a short binary fraction "
                    f"(at most 16 significant bits); pass {option}='fixed<...>' (or {{{name!r}: ...}}) to round "
                    f"it, or {advice}")
    return v, t
