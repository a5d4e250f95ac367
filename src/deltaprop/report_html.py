"""A run's report as one self-contained HTML file: curves, per-layer flows, histograms, warnings in words.

:func:`render_report` turns an Inspector log (:mod:`deltaprop.inspector`),
or a run's history rows alone, into one HTML document; :func:`write_report`
writes it atomically. The document needs nothing else: its style sheet is
inline, every chart is inline SVG drawn here (no script at all), and a
Content-Security-Policy forbids loading anything, so it opens offline, can be
mailed, and makes no network request. It holds no URL.

What it shows, top to bottom:

- the title, the network's layers and the inspector's settings;
- the warnings of :func:`deltaprop.diagnosis.diagnose`, each naming the layer
  and the epoch where the trouble was first seen;
- the curves: the loss and each metric (training and validation), the
  learning rate;
- the per-layer flows as small multiples (one small chart per layer, on one
  shared scale so that layers compare at a glance): ‖Δ‖, ‖∂L/∂W‖, the update
  ratio ‖ΔW‖/‖W‖ on a log scale with a band around 1e-3, the dead and
  saturated fractions;
- histograms of the last epoch inspected: W, z and ∂L/∂W of each layer;
- the gradient check's table, when one was run.

A value that was not finite (``None`` in the log) leaves a gap in its line.
Every string from the log or the caller is escaped. The page reads in a
window 390 pixels wide (the charts scale, small multiples wrap) and prints
(no shading needed, charts kept whole on a page).
"""

import html
import math

from .atomic import atomic_write
from .diagnosis import UPDATE_RATIO_TARGET, LogView, describe_layer, diagnose, number, with_history

__all__ = ["render_report", "write_report", "GRADCHECK_TOL"]

#: a gradient-check error above this is marked as failed (``deltaprop gradcheck``'s default tolerance)
GRADCHECK_TOL = 1e-6
#: (key, title, log scale): the per-layer flows, in the order shown
FLOWS = (
    ("delta_norm", "‖Δ‖, the backpropagated error", True),
    ("grad_W_norm", "‖∂L/∂W‖, the weight gradient", True),
    ("update_ratio", "update ratio ‖ΔW‖/‖W‖ of one step (band: 1e-4 to 1e-2)", True),
    ("dead_fraction", "dead units (output 0 for every sample)", False),
    ("saturated_fraction", "saturated units (σ' ≈ 0)", False),
)
_HISTOGRAMS = (("W", "weights W"), ("z", "pre-activations z"), ("grad_W", "gradient ∂L/∂W"))

_CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;background:#fff;margin:0}
main{max-width:1120px;margin:0 auto;padding:12px 16px 40px}
h1{font-size:1.45em;margin:.4em 0;overflow-wrap:anywhere}h2{font-size:1.2em;margin:1.4em 0 .4em;
border-bottom:1px solid #ccc}h3{font-size:1em;margin:1em 0 .3em}
p,li,td,th,figcaption{overflow-wrap:anywhere}
nav a{margin-right:.8em}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.9em}th,td{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.findings{padding-left:1.2em}.findings li{margin:.4em 0}
.warning strong{color:#a01e00}.note strong{color:#6b4e00}.fail{color:#a01e00;font-weight:bold}
.alert{border:2px solid #a01e00;padding:.4em .8em;margin:.6em 0}
.ok{color:#1f6e3a}
figure{margin:0 0 12px}
figcaption{font-size:.85em;color:#333}
.wide{max-width:760px}
.multiples{display:flex;flex-wrap:wrap;gap:10px 14px}
.multiples figure{flex:1 1 230px;max-width:360px;min-width:0}.multiples figure.wide{flex-basis:400px;max-width:540px}
svg.chart{display:block;width:100%;height:auto}
svg text{font-family:system-ui,sans-serif;fill:#333}
.axis{stroke:#555;stroke-width:1}.grid{stroke:#e3e3e3;stroke-width:1}
.line{fill:none;stroke-width:2;stroke-linejoin:round}.dash{stroke-dasharray:6 4}
.s0{stroke:#0072b2;fill:#0072b2}.s1{stroke:#d55e00;fill:#d55e00}.s2{stroke:#009e73;fill:#009e73}
.s3{stroke:#cc79a7;fill:#cc79a7}.line.s0,.line.s1,.line.s2,.line.s3{fill:none}
.band{fill:#009e73;fill-opacity:.13;stroke:none}.target{stroke:#009e73;stroke-dasharray:3 3}
.bar{fill:#0072b2}
.key{display:inline-block;width:22px;border-top:3px solid;vertical-align:middle;margin:0 4px 0 10px}
.k0{border-color:#0072b2}.k1{border-color:#d55e00;border-top-style:dashed}
.missing{font-size:.85em;color:#666}
@media (max-width:480px){body{font-size:14px}main{padding:8px 10px 30px}.multiples figure{flex-basis:100%}}
@media print{body{font-size:10pt}main{max-width:none;padding:0}nav{display:none}
figure,li,tr{break-inside:avoid}h2,h3{break-after:avoid}.multiples figure{flex-basis:30%}a{color:inherit}}
"""


def _e(text):
    return html.escape(str(text), quote=True)


def _fmt(value, digits=3):
    value = number(value)
    if value is None:
        return "–"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


# ---------------------------------------------------------------------------
# Charts: inline SVG
# ---------------------------------------------------------------------------


def _nice_step(span, count):
    raw = span / max(count, 1)
    base = 10 ** math.floor(math.log10(raw))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= raw)


def _linear_ticks(lo, hi, count=4):
    step = _nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _log_ticks(lo, hi):
    a, b = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
    step = max(1, math.ceil((b - a) / 5))
    return [10.0 ** k for k in range(a, b + 1, step)]


def _domain(values, log, include=()):
    """The y range ``(lo, hi)`` of finite values (positive ones on a log scale), widened for a flat series."""
    vals = [v for v in list(values) + list(include) if v is not None and (v > 0 or not log)]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    if log:
        lo, hi = lo / 1.5, hi * 1.5
        return (lo, hi) if hi / lo > 10 else (math.sqrt(lo * hi) / 10 ** 0.5, math.sqrt(lo * hi) * 10 ** 0.5)
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


class _Frame:
    """The plot area of a chart and its two scales."""

    def __init__(self, width, height, x_domain, y_domain, log, font):
        self.w, self.h, self.font, self.log = width, height, font, log
        self.left, self.right, self.top, self.bottom = 5.2 * font, 10, 8, height - 2.6 * font
        self.x0, self.x1 = x_domain
        if self.x1 == self.x0:
            self.x0, self.x1 = self.x0 - 0.5, self.x1 + 0.5
        self.y0, self.y1 = y_domain

    def x(self, value):
        return self.left + (value - self.x0) / (self.x1 - self.x0) * (self.w - self.left - self.right)

    def y(self, value):
        if self.log:
            value = max(value, self.y0)
            t = (math.log10(value) - math.log10(self.y0)) / (math.log10(self.y1) - math.log10(self.y0))
        else:
            t = (value - self.y0) / (self.y1 - self.y0)
        return self.bottom - t * (self.bottom - self.top)

    def axes(self, x_label, y_label, x_ticks=None):
        out = []
        ticks = _log_ticks(self.y0, self.y1) if self.log else _linear_ticks(self.y0, self.y1)
        for t in ticks:
            if self.y0 <= t <= self.y1:
                y = self.y(t)
                label = f"1e{round(math.log10(t))}" if self.log else f"{t:g}"
                out.append(f'<line class="grid" x1="{self.left:.1f}" x2="{self.w - self.right:.1f}" y1="{y:.1f}" '
                           f'y2="{y:.1f}"/><text x="{self.left - 4:.1f}" y="{y + self.font * 0.35:.1f}" '
                           f'text-anchor="end">{_e(label)}</text>')
        for t in x_ticks if x_ticks is not None else _x_ticks(self.x0, self.x1):
            x = self.x(t)
            anchor = "middle"
            if x_ticks is not None and t in (self.x0, self.x1):  # the ends of a histogram: inside the chart
                anchor = "start" if t == self.x0 else "end"
            out.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{self.bottom:.1f}" '
                       f'y2="{self.bottom + 4:.1f}"/><text x="{x:.1f}" y="{self.bottom + self.font * 1.2:.1f}" '
                       f'text-anchor="{anchor}">'
                       f'{_e(_fmt(t, 2) if x_ticks is not None else f"{t:g}")}</text>')
        out.append(f'<path class="axis" fill="none" d="M{self.left:.1f} {self.top:.1f}V{self.bottom:.1f}'
                   f'H{self.w - self.right:.1f}"/>')
        out.append(f'<text x="{(self.left + self.w - self.right) / 2:.1f}" y="{self.h - 4:.1f}" '
                   f'text-anchor="middle">{_e(x_label)}</text>')
        if y_label:
            out.append(f'<text transform="translate({self.font * 1.0:.1f} {(self.top + self.bottom) / 2:.1f}) '
                       f'rotate(-90)" text-anchor="middle">{_e(y_label)}</text>')
        return out


def _x_ticks(lo, hi):
    step = max(1, _nice_step(hi - lo, 5)) if hi > lo else 1
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) // step) + 1)]


def _svg(width, height, font, label, body):
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}" '
            f'font-size="{font}"><title>{_e(label)}</title>{"".join(body)}</svg>')


def _line_chart(series, label, *, y_label="", log=False, y_domain=None, band=None, small=False, x_domain=None):
    """An SVG line chart of ``series``: ``[(name, style, [(epoch, value or None)])]``; None when nothing is finite.

    ``style`` is 0 (solid) or 1 (dashed, the validation curve); a None value
    breaks the line. On a log scale, values <= 0 are drawn on the bottom edge.
    """
    values = [v for _, _, points in series for _, v in points]
    domain = y_domain or _domain(values, log, include=band or ())
    xs = [x for _, _, points in series for x, v in points if v is not None]
    if domain is None or not xs:
        return None
    width, height, font = (300, 180, 14) if small else (460, 270, 14)
    frame = _Frame(width, height, x_domain or (min(xs), max(xs)), domain, log, font)
    body = frame.axes("epoch", y_label)
    if band:
        top, bottom = frame.y(band[1]), frame.y(band[0])
        body.append(f'<rect class="band" x="{frame.left:.1f}" y="{top:.1f}" '
                    f'width="{frame.w - frame.right - frame.left:.1f}" height="{bottom - top:.1f}"/>'
                    f'<line class="target" x1="{frame.left:.1f}" '
                    f'x2="{frame.w - frame.right:.1f}" y1="{frame.y(UPDATE_RATIO_TARGET):.1f}" '
                    f'y2="{frame.y(UPDATE_RATIO_TARGET):.1f}"/>')
    for name, style, points in series:
        body += _polyline(frame, points, f"s{style}{' dash' if style == 1 else ''}", log)
    return _svg(width, height, font, label, body)


def _polyline(frame, points, style, log):
    """The line through the finite points (a gap at each None), and a dot for each point alone in its run."""
    out, runs, run = [], [], []
    for x, v in sorted(points, key=lambda p: p[0]):
        if v is None:
            if run:
                runs.append(run)
            run = []
        else:
            run.append((frame.x(x), frame.y(v if v > 0 or not log else frame.y0)))
    if run:
        runs.append(run)
    d = "".join("M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in r) for r in runs if len(r) > 1)
    if d:
        out.append(f'<path class="data line {style}" d="{d}"/>')
    for r in runs:
        if len(r) == 1:
            out.append(f'<circle class="data {style.split()[0]}" cx="{r[0][0]:.1f}" cy="{r[0][1]:.1f}" r="3.5"/>')
    return out


def _histogram(hist, label):
    """An SVG bar chart of ``{"edges", "counts"}``; None when the edges or counts are not finite."""
    if not isinstance(hist, dict):
        return None
    edges = [number(e) for e in hist.get("edges") or ()]
    counts = [number(c) for c in hist.get("counts") or ()]
    if not counts or len(edges) != len(counts) + 1 or None in edges or None in counts or edges[-1] <= edges[0]:
        return None
    width, height, font = 300, 170, 13
    frame = _Frame(width, height, (edges[0], edges[-1]), (0, max(max(counts), 1)), False, font)
    span = edges[-1] - edges[0]
    inside = edges[0] + 0.2 * span < 0 < edges[-1] - 0.2 * span  # a 0 tick that does not crowd the ends' labels
    ticks = [edges[0], edges[-1]] + ([0.0] if inside else [])
    body = frame.axes("", "count", x_ticks=ticks)
    for a, b, c in zip(edges, edges[1:], counts):
        if c > 0:
            x0, x1, y = frame.x(a), frame.x(b), frame.y(c)
            body.append(f'<rect class="data bar" x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 0.5, 0.8):.1f}" '
                        f'height="{frame.bottom - y:.1f}"/>')
    return _svg(width, height, font, label, body)


def _figure(svg, caption, wide=False):
    return f'<figure{" class=wide" if wide else ""}>{svg}<figcaption>{caption}</figcaption></figure>'


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def _header(view, log, title, notes, facts):
    out = [f"<h1>{_e(title or 'deltaprop run report')}</h1>"]
    out += [f'<p class="alert">{_e(note)}</p>' for note in notes or ()]
    if facts:
        out.append("<p>" + "<br>".join(f"<b>{_e(k)}</b>: {_e(v)}" for k, v in facts) + "</p>")
    settings = (log or {}).get("settings") or {}
    epochs = [e["epoch"] for e in view.epochs]
    inspected = [e["epoch"] for e in view.epochs if view.rows(e)]
    what = f"{len(epochs)} epoch{'s' if len(epochs) != 1 else ''} of curves"
    if inspected:
        what += f"; layers inspected at {len(inspected)} epoch{'s' if len(inspected) != 1 else ''}"
    if settings:
        what += " (" + ", ".join(f"{_e(k)} {_e(v)}" for k, v in settings.items()) + ")"
    out.append(f"<p>{what}.</p>")
    described = [view.info[p] for p in view.order if len(view.info[p]) > 1]
    if described:
        rows = "".join(f"<tr><td>{_e(i.get('path'))}</td><td>{_e(i.get('kind', ''))}</td>"
                       f"<td>{_e(i.get('activation') or '')}</td><td class=num>{_e(i.get('n_in', ''))}</td>"
                       f"<td class=num>{_e(i.get('n_out', ''))}</td></tr>" for i in described)
        out.append('<div class="scroll"><table><tr><th>layer</th><th>kind</th><th>activation</th><th>in</th>'
                   f"<th>out</th></tr>{rows}</table></div>")
    return out


def _warnings(findings, view):
    out = ['<h2 id="warnings">Warnings</h2>']
    if not findings:
        checked = "the curves and every layer's flows" if any(view.rows(e) for e in view.epochs) else \
            "the curves (a log of curves alone: the layer checks need an Inspector log)"
        out.append(f'<p class="ok">No warnings: {checked} look healthy.</p>')
        return out
    items = []
    for f in findings:
        word = "Warning" if f["severity"] == "warning" else "Note"
        where = f"epoch {f['epoch']}" + (f", {f['layer']}" if f["layer"] else "")
        items.append(f'<li class="{_e(f["severity"])}" data-kind="{_e(f["kind"])}"><strong>{word}</strong> '
                     f"({_e(where)}): {_e(f['message'])}</li>")
    out.append(f'<ol class="findings">{"".join(items)}</ol>')
    return out


def _curves(view):
    keys = view.curve_keys()
    bases = [k for k in keys if not k.startswith("val_") and k != "lr"]
    bases += [k[4:] for k in keys if k.startswith("val_") and k[4:] not in bases]
    if not keys:
        return []
    out, figures = ['<h2 id="curves">Curves</h2>'], []
    for base in bases:
        series = [(name, style, view.curve(name)) for name, style in ((base, 0), ("val_" + base, 1)) if name in keys]
        svg = _line_chart(series, f"{base} by epoch", y_label=base)
        caption = "".join(f'<i class="key k{s}"></i>{_e(n)}' for n, s, _ in series)
        missing = f'<p class="missing">{_e(base)}: no finite value</p>'
        figures.append(_figure(svg, caption, wide=True) if svg else missing)
    if "lr" in keys:
        lr = view.curve("lr")
        positive = [v for _, v in lr if v is not None and v > 0]
        svg = _line_chart([("lr", 0, lr)], "learning rate by epoch", y_label="lr",
                          log=bool(positive) and max(positive) > 10 * min(positive))
        if svg:
            figures.append(_figure(svg, '<i class="key k0"></i>learning rate', wide=True))
    out.append(f'<div class="multiples">{"".join(figures)}</div>')
    return out


def _flows(view):
    paths = [p for p in view.order if any(r["path"] == p for e in view.epochs for r in view.rows(e))]
    if not paths:
        return []
    out = ['<h2 id="flows">Per-layer flows</h2>',
           "<p>One small chart per layer, input first, all on one scale for each quantity.</p>"]
    epochs = [e["epoch"] for e in view.epochs if view.rows(e)]
    for key, title, log in FLOWS:
        series = {p: view.series(p, key) for p in paths}
        series = {p: s for p, s in series.items() if s and any(v is not None for _, v in s)}
        if not series:
            continue
        band = (UPDATE_RATIO_TARGET / 10, UPDATE_RATIO_TARGET * 10) if key == "update_ratio" else None
        values = [v for s in series.values() for _, v in s]
        domain = (0.0, 1.0) if not log else _domain(values, True, include=band or ())
        if domain is None:  # every value is 0: no log scale
            log, domain = False, _domain(values, False)
        figures = []
        for path, points in series.items():
            svg = _line_chart([(key, 0, points)], f"{key} of {path}", log=log, y_domain=domain, band=band, small=True,
                              x_domain=(min(epochs), max(epochs)))
            caption = _e(describe_layer(view.info[path]))
            figures.append(_figure(svg, caption) if svg else f'<p class="missing">{caption}: no finite value</p>')
        missing = [p for p in paths if p not in series]
        note = f'<p class="missing">Not measured for {_e(", ".join(missing))}.</p>' if missing else ""
        if log and any(v == 0 for v in values):
            note += '<p class="missing">A value of 0 is drawn on the bottom edge of its log scale.</p>'
        out.append(f'<h3>{_e(title)}</h3><div class="multiples">{"".join(figures)}</div>{note}')
    return out


def _histograms(view):
    last = next((e for e in reversed(view.epochs) if any(isinstance(r.get("hist"), dict) for r in view.rows(e))),
                None)
    if last is None:
        return []
    out = ['<h2 id="histograms">Histograms</h2>', f"<p>At epoch {_e(last['epoch'])}, the last inspected.</p>"]
    for row in view.rows(last):
        hists = row.get("hist") if isinstance(row.get("hist"), dict) else {}
        figures = []
        for key, title in _HISTOGRAMS:
            if key not in hists:
                continue
            svg = _histogram(hists[key], f"{title} of {row['path']}")
            figures.append(_figure(svg, _e(title)) if svg else f'<p class="missing">{_e(title)}: not finite</p>')
        if figures:
            out.append(f'<h3>{_e(describe_layer(view.info.get(row["path"], row)))}</h3>'
                       f'<div class="multiples">{"".join(figures)}</div>')
    return out


def _gradcheck(gradcheck, view):
    if gradcheck is None:
        return []
    rows, tol, about = gradcheck, GRADCHECK_TOL, ""
    if isinstance(gradcheck, dict):
        rows, tol, about = gradcheck.get("rows") or [], gradcheck.get("tol", tol), gradcheck.get("about", "")
    out = ['<h2 id="gradcheck">Gradient check</h2>',
           f"<p>{_e(about)} The error of a block is max|g − d| / max(max|g|, max|d|), g backpropagated and d "
           f"by central differences; above {_e(_fmt(tol))} it fails.</p>"]
    body = []
    for row in rows:
        n = row.get("layer")
        path = view.order[n - 1] if isinstance(n, int) and 0 < n <= len(view.order) else ""
        for block, err in ((k, v) for k, v in row.items() if k != "layer"):
            bad = number(err) is None or err > tol
            body.append(f"<tr><td class=num>{_e(n)}</td><td>{_e(path)}</td><td>{_e(block)}</td>"
                        f"<td class=num>{_e(_fmt(err))}</td><td{' class=fail' if bad else ''}>"
                        f"{'FAIL' if bad else 'ok'}</td></tr>")
    out.append('<div class="scroll"><table><tr><th>layer</th><th>path</th><th>block</th><th>error</th>'
               f"<th>verdict</th></tr>{''.join(body)}</table></div>")
    return out


def render_report(log, title=None, gradcheck=None, history=None, notes=None, facts=None):
    """The run's report: one self-contained HTML document (inline style and SVG, no script, no URL).

    Parameters
    ----------
    log : dict or None
        An Inspector log (``Inspector.log()`` or
        :func:`deltaprop.inspector.load_log`); None with ``history`` alone.
    title : str, optional
        The page's heading (default ``"deltaprop run report"``).
    gradcheck : list of dict or dict, optional
        The rows of :func:`deltaprop.gradcheck` (``{"layer": l, "W": error,
        "b": error}``), or ``{"rows": rows, "tol": tolerance, "about": "how it
        was run"}``; the table is left out when None.
    history : list of dict, optional
        A run's history rows (``{"epoch", "loss", "val_loss", ...}``): they
        replace the log's curves at their epochs (a JSONLogger's file, a model
        file's history).
    notes : list of str, optional
        Shown boxed under the title: why the run stopped, say.
    facts : list of (str, str), optional
        Label and value pairs shown under the title (the data, the optimizer,
        the test score).

    Returns
    -------
    str
        The HTML document.
    """
    if history is not None or log is None:
        log = with_history(log, history or [])
    view = LogView(log)
    parts = _header(view, log, title, notes, facts)
    sections = [("warnings", "Warnings")]
    body = _warnings(diagnose(log), view)
    for name, text, build in (("curves", "Curves", lambda: _curves(view)), ("flows", "Per-layer flows",
                              lambda: _flows(view)), ("histograms", "Histograms", lambda: _histograms(view)),
                              ("gradcheck", "Gradient check", lambda: _gradcheck(gradcheck, view))):
        section = build()
        if section:
            sections.append((name, text))
            body += section
    nav = "<nav>" + "".join(f'<a href="#{n}">{t}</a>' for n, t in sections) + "</nav>"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title or 'deltaprop run report')}</title><style>{_CSS}</style></head>\n"
            f"<body><main>{''.join(parts)}{nav}{''.join(body)}</main></body></html>\n")


def write_report(path, log, **options):
    """Write :func:`render_report` of ``log`` to ``path`` atomically (``options`` as for it); returns ``path``.

    Raises
    ------
    SaveError
        The file could not be written; a previous file at ``path`` is intact.
    """
    text = render_report(log, **options)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
