"""The page around the report's sections: escaping, tables, sections and one inline style.

A dozen lines of f-strings do what a template engine would, without a dependency. The page
is static HTML with no script, and its Content-Security-Policy forbids every fetch except
inline images and the inline style: opened from disk it needs no network, and anything
that would reach out is blocked (and logged by the browser, which the Chromium test checks).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330;
       margin: 0; background: #f4f6f9; }
header { background: #1d3557; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: 0.85; }
main { max-width: 1220px; margin: 0 auto; padding: 12px 24px 40px; }
section { background: #fff; border: 1px solid #dde2ea; border-radius: 6px; margin: 16px 0;
          padding: 10px 20px 16px; }
section h2 { font-size: 18px; margin: 6px 0 10px; border-bottom: 1px solid #e6e9ef; padding-bottom: 6px; }
article > h2 { font-size: 20px; margin: 28px 0 0; }
h3 { font-size: 15px; margin: 14px 0 6px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid #dde2ea; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f6; }
table.pairs th { font-weight: 500; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.figs img, section > img { max-width: 100%; height: auto; border: 1px solid #eef0f3; }
.note { color: #5a6475; font-style: italic; }
.ok, .bad { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-weight: 600; }
.ok { background: #2a9d5c; }
.bad { background: #c0392b; }
code { background: #eef1f6; padding: 0 3px; border-radius: 3px; }
nav a { color: #cfe0ff; margin-right: 12px; text-decoration: none; }
"""


def esc(value) -> str:
    return escape(str(value))


def fmt(value, digits: int = 4) -> str:
    """A number for a table cell: integers as they are, floats to ``digits`` significant digits."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "\u2013" if math.isnan(value) else f"{value:.{digits}g}"
    return esc(value)


def table(head: Sequence[str], rows: Iterable[Sequence], numeric: Sequence[bool] | None = None,
          raw: bool = False) -> str:
    """An HTML table. Cells are formatted with :func:`fmt` (``raw``: cells are HTML already)."""
    rows = list(rows)
    numeric = numeric or [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows)
                          if rows else False for i in range(len(head))]
    cls = lambda i: ' class="num"' if numeric[i] else ""  # noqa: E731
    out = ["<table><thead><tr>", *(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(head)), "</tr></thead><tbody>"]
    for r in rows:
        cells = (str(v) if raw and isinstance(v, str) else fmt(v) for v in r)
        out.append("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(cells)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def pairs(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table of names and values that are HTML already (no header)."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="pairs"><tbody>{body}</tbody></table>'


def section(sid: str, title: str, *body: str) -> str:
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>\n' + "\n".join(body) + "\n</section>"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def badge(ok: bool, text: str) -> str:
    return f'<span class="{"ok" if ok else "bad"}">{esc(text)}</span>'


def figures(*imgs: str) -> str:
    return '<div class="figs">' + "".join(imgs) + "</div>"


def page(title: str, subtitle: str, links: Sequence[tuple[str, str]], body: Sequence[str]) -> str:
    """The whole document: header with links to the sections, then the sections."""
    nav = "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t in links)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{STYLE}</style></head>\n<body>\n"
            f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p><nav>{nav}</nav></header>\n<main>\n"
            + "\n".join(body) + "\n</main>\n</body></html>\n")
