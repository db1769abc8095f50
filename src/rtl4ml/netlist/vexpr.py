"""Verilog-2005 expression text for the primitives' own ``verilog`` methods.

Every wire is a plain unsigned vector at its exact width; operands are brought to a
result's width by explicit sign/zero extension or truncation, so no expression depends on
Verilog's signedness rules and the module stays clean under ``verilator --lint-only -Wall``.
"""

from __future__ import annotations


def literal(value: int, width: int) -> str:
    """``value`` modulo ``2**width`` as a sized literal."""
    return f"{width}'h{value % (1 << width):x}"


def fit(src: str, width: int, signed: bool, to_width: int, up: int = 0) -> str:
    """Exactly ``to_width`` bits of ``(src as a width-bit integer) * 2**up`` in two's complement.

    Result bit ``i`` is source bit ``i - up``: zero below the source, the sign (or zero)
    above it. ``up < 0`` drops low bits, used only where they are known to be zero.
    ``src`` must be a plain wire name unless it is used whole.
    """
    zeros = min(max(up, 0), to_width)
    lo, hi = max(0, -up), min(width - 1, to_width - 1 - up)
    sign = f"{src}[{width - 1}]" if signed and width else "1'b0"
    parts: list[str] = []
    if hi >= lo:
        ext = to_width - zeros - (hi - lo + 1)
        if ext:
            parts.append(f"{{{ext}{{{sign}}}}}")
        parts.append(src if (lo, hi) == (0, width - 1) else (f"{src}[{hi}:{lo}]" if hi > lo else f"{src}[{lo}]"))
    elif up < 0 and signed and width:  # every surviving bit is a copy of the sign
        parts.append(f"{{{to_width}{{{sign}}}}}")
        zeros = 0
    else:
        return f"{to_width}'h0"
    if zeros:
        parts.append(f"{zeros}'h0")
    return parts[0] if len(parts) == 1 else "{" + ", ".join(parts) + "}"


def any_set(r: str, hi: int, lo: int) -> str | None:
    """Verilog for 'some bit of r[hi:lo] is set' (None for an empty range)."""
    if hi < lo:
        return None
    return f"{r}[{lo}]" if hi == lo else f"(|{r}[{hi}:{lo}])"


def any_clear(r: str, hi: int, lo: int) -> str | None:
    """Verilog for 'some bit of r[hi:lo] is clear' (None for an empty range)."""
    if hi < lo:
        return None
    return f"~{r}[{lo}]" if hi == lo else f"(~&{r}[{hi}:{lo}])"


def overflow_flags(r: str, wr: int, signed: bool, t) -> tuple[str, str]:
    """Above-range and below-range flags of the wr-bit code ``r`` for the saturating type ``t``.

    The target range is a power-of-two window, so overflow is a pattern of the top bits
    (not all copies of the sign), which maps to a few LUTs instead of two comparators.
    """
    w = t.width
    top = w - 1 if t.signed else w  # lowest bit position that lies above the target's value bits
    if signed:
        sign = f"{r}[{wr - 1}]"
        mag = any_set(r, wr - 2, top)
        hi_over = f"~{sign} & {mag}" if mag else "1'b0"
        if t.signed:
            gap = any_clear(r, wr - 2, top)
            if t.overflow == "SAT_SYM" and wr >= w and w >= 2:  # the most negative code saturates too
                low = any_set(r, w - 2, 0)
                gap = f"{gap} | ~{low}" if gap else f"~{low}"
            lo_over = f"{sign} & ({gap})" if gap else "1'b0"
        else:
            lo_over = sign
    else:
        hi_over = any_set(r, wr - 1, top) or "1'b0"
        lo_over = "1'b0"
    return hi_over, lo_over
