"""Trend chart geometry for PHQ-9 and GAD-7: the chart page and the signed report draw the same picture."""
from __future__ import annotations

from core import scoring
from core.models import Instrument, OutcomeScore


def trend_chart(scores: list[OutcomeScore], instrument: Instrument, width: int = 400, height: int = 190) -> dict:
    """Geometry for an inline SVG: severity bands as rectangles and the scores as a line."""
    left, right, top, bottom = 30, 8, 8, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    top_score = scoring.MAX_TOTAL[instrument]

    def y(value: float) -> float:
        return round(top + plot_h * (1 - value / top_score), 1)

    bounds = [lower for lower, _n in scoring.BANDS[instrument]] + [top_score]
    bands = []
    for i, (lower, name) in enumerate(scoring.BANDS[instrument]):
        upper = bounds[i + 1]
        bands.append({"y": y(upper), "h": round(y(lower) - y(upper), 1), "cls": "band-" + name.lower().replace(" ", "-"), "label": name,
                      "label_y": round((y(lower) + y(upper)) / 2 + 4, 1)})
    rows = [s for s in scores if s.instrument == instrument]
    points = []
    if rows:
        first, last = rows[0].taken_at, rows[-1].taken_at
        span = max((last - first).total_seconds(), 1)
        for s in rows:
            x = left + (plot_w * (s.taken_at - first).total_seconds() / span if len(rows) > 1 else plot_w / 2)
            points.append({"x": round(x, 1), "y": y(s.total), "score": s})
    return {"width": width, "height": height, "left": left, "right": width - right, "top": top,
            "bottom": height - bottom, "bands": bands, "points": points,
            "line": " ".join(f"{p['x']},{p['y']}" for p in points),
            "ticks": [{"y": y(v), "v": v} for v in bounds[:-1] + [top_score]], "instrument": instrument}
