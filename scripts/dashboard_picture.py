#!/usr/bin/env python3
"""Draws deploy/grafana/hcc-gateway.json as one PNG, from the dashboard's own queries.

Grafana itself cannot be installed here, so this stands in for it: for every panel it takes
the panel's PromQL targets, substitutes the template variables the way Grafana would with
"All" selected, runs them against a real Prometheus (query_range) and draws the answer at the
panel's gridPos on Grafana's 24-column grid, in a dark Grafana-like style. It draws only the
panel types the dashboard uses (row, stat, timeseries, state-timeline); anything else is drawn
as an empty panel that says so. A query that returns nothing is drawn as "No data", as Grafana
would, and listed on stderr so that a wrong metric name shows.

It also drives the second half of the traffic (`drive`): after hcc-demo's own scenario, a
steady stream of dossier updates through the gateway with a long outage of the mock portal in
the middle, so that the breaker and queue panels show what an outage looks like.

Usage: dashboard_picture.py draw --prometheus URL --start UNIX --end UNIX --scrape-interval S
                                 --dashboard JSON --out PNG
       dashboard_picture.py drive --gateway URL --portal URL --seconds S --rate N
                                  --outage-at S --outage-secs S
"""

import argparse
import datetime as dt
import json
import math
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Rectangle  # noqa: E402

# Grafana's dark theme, approximately.
PAGE = "#111217"
PANEL = "#181b1f"
BORDER = "#2a2d33"
TEXT = "#ccccdc"
MUTED = "#8e8e9e"
GRIDLINE = "#2a2d33"
# Grafana's named colours and its classic palette.
NAMED = {
    "green": "#73BF69",
    "red": "#F2495C",
    "orange": "#FF9830",
    "yellow": "#FADE2A",
    "blue": "#5794F2",
    "purple": "#B877D9",
    "text": TEXT,
}
CLASSIC = [
    "#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9",
    "#705DA0", "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C",
]

GRID_COLS = 24
CELL_H = 30  # Grafana's grid cell height, in pixels
MARGIN = 8  # Grafana's gap between panels, in pixels
WIDTH = 1920
HEADER = 70  # the dashboard's title bar and variables, in pixels
FOOTER = 30
DPI = 100


def colour(name):
    if not name:
        return NAMED["green"]
    return NAMED.get(name, name)


def substitute(expr, variables, rate_interval, interval, range_s):
    """Replaces Grafana's variables as Grafana would with these selections."""
    builtins = {
        "__rate_interval": f"{rate_interval}s",
        "__interval": f"{interval}s",
        "__range": f"{range_s}s",
    }
    allv = {**builtins, **variables}

    def one(m):
        name = m.group(1) or m.group(2)
        return allv.get(name, m.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def query_range(prom, expr, start, end, step):
    qs = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prom}/api/v1/query_range?{qs}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    out = []
    for s in body["data"]["result"]:
        ts = [float(t) for t, _ in s["values"]]
        vs = [float(v) for _, v in s["values"]]
        out.append((s["metric"], ts, vs))
    return out


def legend_name(fmt, metric, expr):
    if fmt:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt).strip()
    if metric:
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
        return f"{metric.get('__name__', '')}{{{inner}}}"
    return expr


def fmt_value(v, unit):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if unit == "s":
        a = abs(v)
        if a == 0:
            return "0 s"
        if a < 1e-3:
            return f"{v * 1e6:.0f} µs"
        if a < 1:
            return f"{v * 1e3:.3g} ms"
        if a < 60:
            return f"{v:.3g} s"
        if a < 3600:
            return f"{v / 60:.3g} min"
        return f"{v / 3600:.3g} hour"
    suffix = {"reqps": " req/s", "ops": " ops/s"}.get(unit, "")
    a = abs(v)
    if a >= 1e6:
        s = f"{v / 1e6:.3g} Mil"
    elif a >= 1e3:
        s = f"{v / 1e3:.3g} K"
    elif a == int(a):
        s = f"{int(v)}"
    elif a >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.3g}"
    return s + suffix


def threshold_colour(v, fc):
    steps = (fc.get("thresholds") or {}).get("steps") or [{"color": "green", "value": None}]
    c = steps[0]["color"]
    for st in steps[1:]:
        if st.get("value") is not None and v is not None and v >= st["value"]:
            c = st["color"]
    return colour(c)


def last_not_null(vs):
    for v in reversed(vs):
        if not math.isnan(v):
            return v
    return None


def panel_box(fig, p, total_h):
    """The panel's rectangle in figure coordinates (0..1), from its gridPos."""
    g = p["gridPos"]
    col_w = (WIDTH - MARGIN) / GRID_COLS
    x0 = MARGIN + g["x"] * col_w
    w = g["w"] * col_w - MARGIN
    y0 = HEADER + g["y"] * (CELL_H + MARGIN)
    h = g["h"] * (CELL_H + MARGIN) - MARGIN
    return x0 / WIDTH, 1 - (y0 + h) / total_h, w / WIDTH, h / total_h, w, h


def draw_frame(fig, box, title, bg=PANEL):
    fx, fy, fw, fh, _, hpx = box
    fig.patches.append(
        FancyBboxPatch(
            (fx, fy), fw, fh, boxstyle="round,pad=0,rounding_size=0.002",
            transform=fig.transFigure, facecolor=bg, edgecolor=BORDER, linewidth=0.8, zorder=-10,
        )
    )
    fig.text(fx + 8 / WIDTH, fy + fh - 16 / (hpx / fh), title, color=TEXT if bg == PANEL else "white", fontsize=9.5,
             fontweight="bold", va="center", ha="left")


def no_data(fig, box):
    fx, fy, fw, fh, _, _ = box
    fig.text(fx + fw / 2, fy + fh / 2, "No data", color=MUTED, fontsize=12, ha="center", va="center")


def run_targets(prom, p, variables, start, end, step, rate_interval, missing):
    series = []
    for t in p.get("targets", []):
        if t.get("hide"):
            continue
        expr = substitute(t["expr"], variables, rate_interval, step, int(end - start))
        got = query_range(prom, expr, start, end, step)
        if not got:
            missing.append((p["title"], t.get("refId"), expr))
        for metric, ts, vs in got:
            series.append((legend_name(t.get("legendFormat"), metric, expr), ts, vs))
    return series


def draw_stat(fig, box, p, series):
    fc = p.get("fieldConfig", {}).get("defaults", {})
    unit = fc.get("unit", "short")
    fx, fy, fw, fh, wpx, hpx = box
    if not series and fc.get("noValue") is None:
        draw_frame(fig, box, p["title"])
        no_data(fig, box)
        return
    values = [(name, last_not_null(vs)) for name, _, vs in series]
    if not values:  # Grafana's "No value" option: what to show when the query returns nothing
        draw_frame(fig, box, p["title"], bg=threshold_colour(None, fc) if p.get("options", {}).get("colorMode") == "background" else PANEL)
        fig.text(fx + fw / 2, fy + fh * 0.42, str(fc["noValue"]), color="white", fontsize=min(30, hpx / 4.5),
                 fontweight="bold", ha="center", va="center")
        return
    background = p.get("options", {}).get("colorMode") == "background"
    if len(values) == 1:
        v = values[0][1]
        draw_frame(fig, box, p["title"], bg=threshold_colour(v, fc) if background else PANEL)
        fig.text(fx + fw / 2, fy + fh * 0.42, fmt_value(v, unit), color="white" if background else
                 threshold_colour(v, fc), fontsize=min(30, hpx / 4.5), fontweight="bold",
                 ha="center", va="center")
        return
    # Several values: Grafana tiles them, each with its name above its number.
    draw_frame(fig, box, p["title"])
    values.sort(key=lambda nv: nv[0])
    n = len(values)
    cols = 2 if n > 3 else 1
    rows = math.ceil(n / cols)
    top = 30  # below the title, in pixels
    tile_w = (wpx - 16) / cols
    tile_h = (hpx - top - 8) / rows
    for i, (name, v) in enumerate(values):
        r, c = divmod(i, cols)
        tx = fx + (8 + c * tile_w) / WIDTH
        ty_top = fy + fh - (top + r * tile_h) / (hpx / fh)
        tw = (tile_w - 4) / WIDTH
        th = (tile_h - 4) / (hpx / fh)
        fig.patches.append(
            Rectangle((tx, ty_top - th), tw, th, transform=fig.transFigure,
                      facecolor=threshold_colour(v, fc) if background else PANEL,
                      edgecolor="none", zorder=-5)
        )
        fig.text(tx + tw / 2, ty_top - th * 0.28, name or "-", color="white", fontsize=8,
                 ha="center", va="center")
        fig.text(tx + tw / 2, ty_top - th * 0.66, fmt_value(v, unit), color="white",
                 fontsize=min(17, tile_h / 2.6), fontweight="bold", ha="center", va="center")


def axes_in(fig, box, legend_rows):
    """An axes inside the panel, leaving room for the title, the y labels and the legend."""
    fx, fy, fw, fh, wpx, hpx = box
    left, right, top = 62, 10, 30
    bottom = 26 + legend_rows * 13
    return fig.add_axes([
        fx + left / WIDTH, fy + bottom / (hpx / fh),
        fw - (left + right) / WIDTH, fh - (top + bottom) / (hpx / fh),
    ])


def style_axes(ax, unit, start, end):
    ax.set_facecolor(PANEL)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=7, length=0, pad=3)
    ax.grid(True, color=GRIDLINE, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_xlim(dt.datetime.fromtimestamp(start, dt.timezone.utc), dt.datetime.fromtimestamp(end, dt.timezone.utc))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=dt.timezone.utc))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: fmt_value(v, unit)))
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=4))


def draw_legend_table(fig, box, items, calcs, unit):
    """Grafana's table legend: name, then the calcs' columns (lastNotNull -> "Last *")."""
    fx, fy, fw, fh, wpx, hpx = box
    heads = {"lastNotNull": "Last *", "max": "Max", "sum": "Total", "mean": "Mean", "last": "Last"}
    col_w = 78
    y = fy + (6 + len(items) * 13) / (hpx / fh)
    right = fx + fw - 10 / WIDTH
    for j, c in enumerate(reversed(calcs)):
        fig.text(right - j * col_w / WIDTH, y, heads.get(c, c), color=NAMED["blue"], fontsize=7,
                 ha="right", va="center")
    for i, (name, col, vs) in enumerate(items):
        yy = y - (i + 1) * 13 / (hpx / fh)
        if col is None:  # the "+ N more" line
            fig.text(fx + 28 / WIDTH, yy, name, color=MUTED, fontsize=7, ha="left", va="center")
            continue
        fig.patches.append(Rectangle((fx + 10 / WIDTH, yy - 1.5 / (hpx / fh)), 12 / WIDTH, 3 / (hpx / fh),
                                     transform=fig.transFigure, facecolor=col, edgecolor="none"))
        fig.text(fx + 28 / WIDTH, yy, name, color=TEXT, fontsize=7, ha="left", va="center")
        vals = [v for v in vs if not math.isnan(v)]
        for j, c in enumerate(reversed(calcs)):
            if not vals:
                v = None
            elif c == "max":
                v = max(vals)
            elif c == "sum":
                v = sum(vals)
            elif c == "mean":
                v = sum(vals) / len(vals)
            else:
                v = vals[-1]
            fig.text(right - j * col_w / WIDTH, yy, fmt_value(v, unit), color=TEXT, fontsize=7,
                     ha="right", va="center")


def draw_timeseries(fig, box, p, series, start, end, step):
    fc = p.get("fieldConfig", {}).get("defaults", {})
    unit = fc.get("unit", "short")
    custom = fc.get("custom", {})
    draw_frame(fig, box, p["title"])
    if not series:
        ax = axes_in(fig, box, 0)
        style_axes(ax, unit, start, end)
        ax.set_yticks([])
        no_data(fig, box)
        return
    legend = p.get("options", {}).get("legend", {})
    calcs = legend.get("calcs", [])
    series = sorted(series, key=lambda s: s[0])
    # Grafana scrolls a long legend; a picture cannot, so it lists as many series as leave the
    # plot room, the busiest first, and says how many more there are.
    fit = max(1, int((box[5] - 30 - 24 - 140) / 13) - 1)
    listed = series
    if len(series) > fit:
        peak = {id(s): max([abs(v) for v in s[2] if not math.isnan(v)] or [0]) for s in series}
        keep = sorted(series, key=lambda s: -peak[id(s)])[: fit - 1]
        rest = [s for s in series if not any(s is k for k in keep)]
        listed = [s for s in series if any(s is k for k in keep)]
        listed.append((f"+ {len(rest)} more" + (", 0 throughout" if all(peak[id(s)] == 0 for s in rest) else ""), None, []))
    ax = axes_in(fig, box, len(listed) + 1 if legend.get("showLegend", True) else 0)
    style_axes(ax, unit, start, end)
    stacked = (custom.get("stacking") or {}).get("mode") == "normal"
    bars = custom.get("drawStyle") == "bars"
    alpha = (custom.get("fillOpacity") or 0) / 100
    base = {}
    items = []
    colours = {}
    for i, (name, ts, vs) in enumerate(series):
        col = CLASSIC[i % len(CLASSIC)]
        colours[name] = col
        when = [dt.datetime.fromtimestamp(t, dt.timezone.utc) for t in ts]
        below = [base.get(t, 0.0) if stacked else 0.0 for t in ts]
        top = [b + (0 if math.isnan(v) else v) if stacked else v for b, v in zip(below, vs)]
        if bars:
            ax.bar(when, [t - b for t, b in zip(top, below)], bottom=below, width=step * 0.8 / 86400,
                   color=col, alpha=max(alpha, 0.3), edgecolor=col, linewidth=0.3)
        else:
            ax.plot(when, top, color=col, linewidth=1.1)
            if alpha:
                ax.fill_between(when, below, top, color=col, alpha=alpha, linewidth=0)
        if stacked:
            for t, v in zip(ts, top):
                base[t] = v
    if fc.get("min") is not None:
        ax.set_ylim(bottom=fc["min"])
    seen = [v for _, _, vs in series for v in vs if not math.isnan(v)]
    if seen and max(seen) == min(seen):  # a flat line: Grafana gives it an axis of one unit
        ax.set_ylim(min(seen) if fc.get("min") is None else fc["min"], max(seen) + 1)
    if (custom.get("thresholdsStyle") or {}).get("mode") == "line":
        for st in (fc.get("thresholds") or {}).get("steps", [])[1:]:
            if st.get("value") is not None and st["value"] <= ax.get_ylim()[1]:
                ax.axhline(st["value"], color=colour(st["color"]), linestyle="--", linewidth=0.8)
    if legend.get("showLegend", True):
        items = [(name, colours.get(name), vs) for name, _, vs in listed]
        draw_legend_table(fig, box, items, calcs, unit)


def draw_state_timeline(fig, box, p, series, start, end, step):
    fc = p.get("fieldConfig", {}).get("defaults", {})
    draw_frame(fig, box, p["title"])
    if not series:
        no_data(fig, box)
        return
    mapping = {}
    for m in fc.get("mappings", []):
        if m.get("type") == "value":
            for k, o in m.get("options", {}).items():
                mapping[float(k)] = (o.get("text", k), colour(o.get("color")))
    fx, fy, fw, fh, wpx, hpx = box
    series = sorted(series, key=lambda s: s[0])
    left = 14 + 7 * max(len(n) for n, _, _ in series)
    ax = fig.add_axes([fx + left / WIDTH, fy + 42 / (hpx / fh), fw - (left + 10) / WIDTH,
                       fh - 72 / (hpx / fh)])
    style_axes(ax, "short", start, end)
    ax.grid(False)
    n = len(series)
    for i, (name, ts, vs) in enumerate(series):
        row = n - 1 - i
        run_start, run_v = None, None
        for t, v in list(zip(ts, vs)) + [(ts[-1] + step, float("nan"))]:
            if run_v is not None and (math.isnan(v) or v != run_v):
                col = mapping.get(run_v, (None, threshold_colour(run_v, fc)))[1]
                ax.barh(row, (t - run_start) / 86400, left=mdates.date2num(dt.datetime.fromtimestamp(run_start, dt.timezone.utc)),
                        height=0.9, color=col, alpha=0.8, linewidth=0)
                run_v = None
            if run_v is None and not math.isnan(v):
                run_start, run_v = t, v
    ax.set_yticks(range(n))
    ax.set_yticklabels([s[0] for s in reversed(series)], color=TEXT, fontsize=7.5)
    ax.set_ylim(-0.5, n - 0.5)
    x = fx + 12 / WIDTH
    for _, (text, col) in sorted(mapping.items()):
        fig.patches.append(Rectangle((x, fy + 12 / (hpx / fh)), 12 / WIDTH, 7 / (hpx / fh),
                                     transform=fig.transFigure, facecolor=col, edgecolor="none"))
        fig.text(x + 16 / WIDTH, fy + 15.5 / (hpx / fh), text, color=TEXT, fontsize=7, va="center")
        x += (24 + 7 * len(text)) / WIDTH


def duration_secs(text):
    """Grafana's "1m", "30s", "1h" as seconds (0 when absent)."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text or "")
    if not m:
        return 0
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def all_panels(dash):
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])  # a collapsed row keeps its panels inside


# The statuses a dossier goes through, as hcc-demo sends them (tools/src/demo.rs, LIFE).
LIFE = [1, 2, 4, 5, 4, 9, 10]


def post_json(url, body, headers, timeout=10):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def drive(args):
    """Posts dossier updates at about --rate a second for --seconds (each dossier's in order,
    as a service desk would), and takes the mock portal down for --outage-secs from --outage-at."""
    workers = 8
    per_worker = args.rate / workers
    started = time.monotonic()
    deadline = started + args.seconds
    sent = [0] * workers
    refused = [0] * workers

    def desk(w):
        n = 0
        while time.monotonic() < deadline:
            ma = f"000.00.22.H46-241207-{w}{n:04d}"
            n += 1
            for step, status in enumerate(LIFE):
                if time.monotonic() >= deadline:
                    return
                body = {
                    "MaHoSo": ma, "MaTTHC": "1.004227.000.00.00.H46",
                    "TenTTHC": "Cấp giấy chứng nhận quyền sử dụng đất lần đầu", "MaLinhVuc": "G09-TN01",
                    "ChuHoSo": "Công dân mẫu", "LoaiDoiTuong": 1, "NgayTiepNhan": "20241207083000",
                    "NgayHenTra": "20241221170000", "TrangThaiHoSo": status,
                    "DonViXuLy": "Trung tâm Phục vụ hành chính công tỉnh Quảng Ninh", "GhiChu": f"bước {step}",
                }
                for _ in range(20):  # the desk retries with the same idempotency key
                    code = post_json(f"{args.gateway}/v1/dossiers", body, {
                        "Authorization": "Bearer dev-centre-key", "Idempotency-Key": f"{ma}-s{step}"})
                    if code == 202:
                        break
                    refused[w] += 1
                    time.sleep(0.2)
                sent[w] += 1
                # Pace: this desk's share of the rate.
                ahead = started + sent[w] / per_worker - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    paid = [0, 0]  # created, paid through the mock PayGov

    def payer():
        # A citizen pays a fee through PayGov every two seconds, as in hcc-demo.
        k = 0
        while time.monotonic() < deadline:
            time.sleep(2)
            ma = f"000.00.22.H46-241207-0{k:04d}"
            k += 1
            body = {"MaHoSo": ma, "SoTien": 100000, "provider": "paygov", "MaDonVi": "000.00.22.H46",
                    "MaTTHC": "1.004227", "TenTTHC": "Cấp giấy chứng nhận quyền sử dụng đất",
                    "PhiLePhi": [{"LoaiPhiLePhi": 2, "MaPhiLePhi": "LP01",
                                  "TenPhiLePhi": "Lệ phí cấp giấy chứng nhận", "SoTien": 100000}],
                    "HoTenNguoiNop": "Công dân mẫu", "SoCMNDNguoiNop": "022190000123",
                    "DiaChiNguoiNop": "Hạ Long, Quảng Ninh", "IpNguoiNop": "198.51.100.23"}
            req = urllib.request.Request(f"{args.gateway}/v1/payments", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json",
                                                                 "Authorization": "Bearer dev-centre-key"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    reference = json.load(r).get("MaThamChieu")
            except (OSError, ValueError):
                continue
            if not reference:
                continue
            paid[0] += 1
            code = post_json(f"{args.portal}/_mock/paygov/pay", {
                "MaThamChieu": reference, "callback_urls": [f"{args.gateway}/v1/callbacks/paygov"]}, {})
            if 200 <= code < 300:
                paid[1] += 1

    threads = [threading.Thread(target=desk, args=(w,), daemon=True) for w in range(workers)]
    threads.append(threading.Thread(target=payer, daemon=True))
    for t in threads:
        t.start()
    down = False
    while time.monotonic() < deadline:
        t = time.monotonic() - started
        if not down and args.outage_at <= t < args.outage_at + args.outage_secs:
            post_json(f"{args.portal}/_mock/faults", {"fail_rate": 1.0, "fail_status": 503}, {})
            down = True
            print(f"portal down at +{t:.0f} s", flush=True)
        elif down and t >= args.outage_at + args.outage_secs:
            post_json(f"{args.portal}/_mock/faults", {}, {})
            down = False
            print(f"portal back at +{t:.0f} s", flush=True)
        time.sleep(0.2)
    if down:
        post_json(f"{args.portal}/_mock/faults", {}, {})
    for t in threads:
        t.join(timeout=30)
    print(f"posted {sum(sent)} updates in {args.seconds:g} s ({sum(refused)} answers other than 202); "
          f"{paid[0]} fees asked, {paid[1]} paid through the mock PayGov")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    dr = sub.add_parser("draw")
    dr.add_argument("--prometheus", required=True)
    dr.add_argument("--start", type=float, required=True)
    dr.add_argument("--end", type=float, required=True)
    dr.add_argument("--scrape-interval", type=float, default=1.0)
    dr.add_argument("--dashboard", required=True)
    dr.add_argument("--out", required=True)
    dv = sub.add_parser("drive")
    dv.add_argument("--gateway", required=True)
    dv.add_argument("--portal", required=True)
    dv.add_argument("--seconds", type=float, default=150)
    dv.add_argument("--rate", type=float, default=100)
    dv.add_argument("--outage-at", type=float, default=40)
    dv.add_argument("--outage-secs", type=float, default=45)
    args = ap.parse_args()
    if args.command == "drive":
        drive(args)
        return

    with open(args.dashboard, encoding="utf-8") as f:
        dash = json.load(f)
    start, end = int(args.start), int(args.end)
    # Grafana's $__interval is the range over the panel's width in pixels, at least the
    # datasource's scrape interval; $__rate_interval is max($__interval + scrape, 4 * scrape).
    scrape = args.scrape_interval
    step = max(scrape, math.ceil((end - start) / 600))
    rate_interval = int(max(step + scrape, 4 * scrape))
    variables = {}
    shown = []
    for v in dash.get("templating", {}).get("list", []):
        cur = v.get("current", {}).get("value")
        if cur in ("$__all", ["$__all"]) or (isinstance(cur, list) and "$__all" in cur):
            variables[v["name"]] = v.get("allValue") or ".*"
            shown.append((v.get("label", v["name"]), "All"))
        else:
            variables[v["name"]] = cur if isinstance(cur, str) else "|".join(cur)
            shown.append((v.get("label", v["name"]), variables[v["name"]]))

    ymax = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in all_panels(dash))
    total_h = HEADER + ymax * (CELL_H + MARGIN) + FOOTER
    fig = plt.figure(figsize=(WIDTH / DPI, total_h / DPI), dpi=DPI, facecolor=PAGE)
    fig.text(MARGIN / WIDTH, 1 - 20 / total_h, dash.get("title", ""), color=TEXT, fontsize=14,
             fontweight="bold", va="center")
    span = f"{dt.datetime.fromtimestamp(start, dt.timezone.utc):%Y-%m-%d %H:%M:%S} to " \
           f"{dt.datetime.fromtimestamp(end, dt.timezone.utc):%H:%M:%S} UTC"
    fig.text(1 - MARGIN / WIDTH, 1 - 20 / total_h, span, color=MUTED, fontsize=9, ha="right", va="center")
    x = MARGIN / WIDTH
    for label, value in shown:
        fig.text(x, 1 - 50 / total_h, f"{label}  ", color=TEXT, fontsize=9, va="center",
                 bbox=dict(boxstyle="round,pad=0.35", facecolor=PANEL, edgecolor=BORDER))
        fig.text(x + (len(label) * 7 + 22) / WIDTH, 1 - 50 / total_h, value, color=TEXT, fontsize=9,
                 va="center")
        x += (len(label) + len(value)) * 7 / WIDTH + 60 / WIDTH

    missing = []
    for p in all_panels(dash):
        box = panel_box(fig, p, total_h)
        if p["type"] == "row":
            fx, fy, fw, fh, _, _ = box
            fig.text(fx, fy + fh / 2, p["title"], color=TEXT, fontsize=11, fontweight="bold", va="center")
            continue
        # A panel's own minimum interval ("interval": "1m") widens its step, as in Grafana.
        p_step = max(step, duration_secs(p.get("interval")))
        p_rate = int(max(p_step + scrape, 4 * scrape))
        series = run_targets(args.prometheus, p, variables, start, end, p_step, p_rate, missing)
        if p["type"] == "stat":
            draw_stat(fig, box, p, series)
        elif p["type"] == "timeseries":
            draw_timeseries(fig, box, p, series, start, end, p_step)
        elif p["type"] == "state-timeline":
            draw_state_timeline(fig, box, p, series, start, end, p_step)
        else:
            draw_frame(fig, box, f"{p['title']} ({p['type']}: not drawn here)")

    fig.text(MARGIN / WIDTH, 12 / total_h,
             "Drawn by scripts/dashboard_picture.py from the dashboard's own PromQL, run against a real "
             f"Prometheus (scrape every {scrape:g} s, step {step} s, $__rate_interval {rate_interval} s). "
             "Not a Grafana screenshot.",
             color=MUTED, fontsize=8, va="center")
    fig.savefig(args.out, dpi=DPI, facecolor=PAGE)
    for title, ref, expr in missing:
        print(f"no data: {title} [{ref}]: {expr}", file=sys.stderr)


if __name__ == "__main__":
    main()
