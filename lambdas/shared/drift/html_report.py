"""A self-contained HTML drift report: inline CSS and SVG, no scripts, nothing fetched.

It is written to S3 next to the JSON report and opened by whoever the alarm woke up, possibly
offline or behind a strict content policy, hence no JavaScript and no external assets. Every
name that came from data (feature names, category values) goes through html.escape.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lambdas.shared.drift.engine import DriftResult, FeatureDrift, Histogram

MAX_CATEGORIES_SHOWN = 30  # the rest are folded into one "other" bar

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d2733}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#5b6670;font-size:13px;margin-bottom:16px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #d7dde3;padding:4px 8px;text-align:right}
th{background:#f1f4f7}td.l,th.l{text-align:left}
.drift{background:#fde2e1;color:#9b1c1c;font-weight:600}.ok{color:#1f6f3f}
.na{color:#8a939c}
.feature{border:1px solid #d7dde3;border-radius:6px;padding:10px 14px;margin:14px 0}
.feature.drifted{border-color:#d64545;box-shadow:0 0 0 1px #d64545}
.verdict{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;margin-left:8px}
.verdict.drift{background:#d64545;color:#fff}.verdict.ok{background:#e3f1e8}
.verdict.na{background:#eceff2}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
svg text{font-size:10px;fill:#3b4650}
"""

_REF_COLOUR = "#7a8ea3"
_CUR_COLOUR = "#e08a2c"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    v = float(value)
    if v != 0 and (abs(v) < 10**-digits or abs(v) >= 10**6):
        return f"{v:.3e}"
    return f"{v:.{digits}f}"


def _verdict(f: FeatureDrift) -> tuple[str, str]:
    if f.status != "ok":
        return "na", "insufficient data"
    return ("drift", "drifted") if f.drifted else ("ok", "no drift")


def _folded(h: Histogram) -> Histogram:
    if len(h.labels) <= MAX_CATEGORIES_SHOWN:
        return h
    order = sorted(range(len(h.labels)), key=lambda i: -(h.ref_counts[i] + h.cur_counts[i]))
    keep, rest = order[: MAX_CATEGORIES_SHOWN - 1], order[MAX_CATEGORIES_SHOWN - 1 :]
    return Histogram(
        labels=(*(h.labels[i] for i in keep), f"other ({len(rest)})"),
        ref_counts=(*(h.ref_counts[i] for i in keep), sum(h.ref_counts[i] for i in rest)),
        cur_counts=(*(h.cur_counts[i] for i in keep), sum(h.cur_counts[i] for i in rest)),
    )


def histogram_svg(h: Histogram, width: int = 720, height: int = 200) -> str:
    """Reference vs current shares per bin as grouped bars, in inline SVG."""
    h = _folded(h)
    ref_total = sum(h.ref_counts) or 1
    cur_total = sum(h.cur_counts) or 1
    ref = [c / ref_total for c in h.ref_counts]
    cur = [c / cur_total for c in h.cur_counts]
    top = max([*ref, *cur, 1e-9])
    left, plot_h = 40, height - 70  # room below the axis for slanted labels
    n = max(len(h.labels), 1)
    slot = (width - left - 10) / n
    bar = max(slot * 0.38, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{width - 10}" y2="{10 + plot_h}" stroke="#9aa5b1"/>',
        f'<text x="{left - 4}" y="14" text-anchor="end">{top:.0%}</text>',
        f'<text x="{left - 4}" y="{10 + plot_h}" text-anchor="end">0</text>',
    ]
    for i, label in enumerate(h.labels):
        x = left + i * slot + slot * 0.1
        for k, (share, colour) in enumerate(((ref[i], _REF_COLOUR), (cur[i], _CUR_COLOUR))):
            bh = plot_h * share / top
            tip = f"{'reference' if k == 0 else 'current'}: {share:.2%}"
            parts.append(
                f'<rect x="{x + k * bar:.1f}" y="{10 + plot_h - bh:.1f}" width="{bar:.1f}" '
                f'height="{bh:.1f}" fill="{colour}"><title>{_e(label)} {tip}</title></rect>'
            )
        short = label if len(label) <= 16 else label[:15] + "\u2026"
        cx = left + (i + 0.5) * slot
        parts.append(
            f'<text x="{cx:.1f}" y="{10 + plot_h + 12}" text-anchor="end" '
            f'transform="rotate(-35 {cx:.1f} {10 + plot_h + 12})">{_e(short)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _feature_row(f: FeatureDrift) -> str:
    cls, text = _verdict(f)
    stat = f"KS {_fmt(f.ks)}" if f.kind == "numeric" else f"&chi;&sup2; {_fmt(f.chi2, 2)}"
    return (
        f'<tr><td class="l"><a href="#f-{_e(f.name)}">{_e(f.name)}</a></td><td class="l">{f.kind}</td>'
        f"<td>{stat}</td><td>{_fmt(f.p_value)}</td><td>{_fmt(f.p_adjusted)}</td>"
        f"<td>{_fmt(f.psi)}</td><td>{_fmt(f.js)}</td><td>{f.n_cur}</td><td>{f.n_missing}</td>"
        f'<td class="{cls}">{text}</td></tr>'
    )


def _feature_section(f: FeatureDrift, title: str | None = None) -> str:
    cls, text = _verdict(f)
    stats = [
        ("KS" if f.kind == "numeric" else "chi-squared", _fmt(f.ks if f.kind == "numeric" else f.chi2)),
        ("p-value", _fmt(f.p_value)),
        ("BH-adjusted p", _fmt(f.p_adjusted)),
        ("PSI", _fmt(f.psi)),
        ("Jensen-Shannon", _fmt(f.js)),
        ("n reference", str(f.n_ref)),
        ("n current", str(f.n_cur)),
        ("missing", str(f.n_missing)),
    ]
    if f.unseen_categories:
        shown = ", ".join(_e(c) for c in f.unseen_categories[:10])
        more = f" (+{len(f.unseen_categories) - 10})" if len(f.unseen_categories) > 10 else ""
        stats.append(("unseen categories", shown + more))
    cells = "".join(f'<th class="l">{k}</th><td class="l">{v}</td>' for k, v in stats)
    return (
        f'<div class="feature{" drifted" if f.drifted else ""}" id="f-{_e(f.name)}">'
        f'<strong>{_e(title or f.name)}</strong> <span class="na">({f.kind})</span>'
        f'<span class="verdict {cls}">{text}</span>'
        f"<table><tr>{cells}</tr></table>"
        f'<div class="legend"><span style="background:{_REF_COLOUR}"></span>reference'
        f'<span style="background:{_CUR_COLOUR}"></span>current</div>'
        f"{histogram_svg(f.histogram)}</div>"
    )


def render_html(
    result: DriftResult,
    *,
    title: str = "Drift report",
    window: Mapping[str, Any] | None = None,
    malformed: Mapping[str, int] | None = None,
    generated_at: datetime | None = None,
) -> str:
    """The whole report as one HTML document (summary table first, then one section per feature,
    drifted features first)."""
    s = result.summary
    malformed = dict(malformed or {})
    when = (generated_at or datetime.now(UTC)).isoformat()
    win = ", ".join(f"{_e(k)}: {_e(v)}" for k, v in (window or {}).items())
    pred = "not tested" if s.prediction_drift is None else ("DRIFTED" if s.prediction_drift else "no drift")
    pred_cls = "drift" if s.prediction_drift else ""
    summary_rows = [
        ("status", _e(s.status), ""),
        ("rows (reference / current)", f"{s.n_ref_rows} / {s.n_cur_rows}", ""),
        ("drifted features", f"{s.n_drifted} of {s.n_tested}", "drift" if s.n_drifted else ""),
        ("drifted share", _fmt(s.drifted_share, 3), ""),
        ("max PSI", f"{_fmt(s.max_psi)} ({_e(s.max_psi_feature or '-')})", ""),
        ("prediction PSI", _fmt(s.prediction_psi), ""),
        ("prediction drift", pred, pred_cls),
        ("malformed records", str(sum(malformed.values())), ""),
        ("rule", f"BH-adjusted p &lt; {s.alpha} and PSI &ge; {s.min_psi}", ""),
    ]
    summary = "".join(
        f'<tr><th class="l">{k}</th><td class="l {c}">{v}</td></tr>' for k, v, c in summary_rows
    )
    ordered = sorted(result.features.values(), key=lambda f: (not f.drifted, f.status != "ok", -_psi_key(f)))
    table = "".join(_feature_row(f) for f in ordered)
    sections = "".join(_feature_section(f) for f in ordered)
    if result.prediction is not None:
        sections = _feature_section(result.prediction, "model prediction") + sections
    bad = "".join(f'<tr><td class="l">{_e(k)}</td><td>{v}</td></tr>' for k, v in sorted(malformed.items()))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{_e(title)}</h1><div class="meta">generated {_e(when)}{" &middot; " + win if win else ""}</div>'
        f"<h2>Summary</h2><table>{summary}</table>"
        "<h2>Features</h2><table><tr>"
        '<th class="l">feature</th><th class="l">kind</th><th>statistic</th><th>p-value</th>'
        "<th>BH-adjusted p</th><th>PSI</th><th>JS</th><th>n current</th><th>missing</th>"
        f"<th>verdict</th></tr>{table}</table>"
        + (
            f'<h2>Malformed records</h2><table><tr><th class="l">reason</th><th>count</th></tr>{bad}</table>'
            if bad
            else ""
        )
        + f"<h2>Distributions</h2>{sections}</body></html>"
    )


def _psi_key(f: FeatureDrift) -> float:
    return f.psi if math.isfinite(f.psi) else -1.0
