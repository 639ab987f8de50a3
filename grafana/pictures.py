"""Draws what each row of a dashboard shows (grafana/frames.py's frames) as a PNG, for a
person without a Grafana server: tables as tables, time series as lines or bars, bar
gauges as sorted bars, pie charts as pies, stats as their numbers.
"""

import datetime
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates  # noqa: E402  (the backend must be chosen first)
import matplotlib.pyplot as plt  # noqa: E402

import frames as grafana  # noqa: E402


def _time_series(ax, panel, data):
    bars = (panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {}).get("drawStyle") == "bars")
    for frame in data or []:
        times = next((f for f in frame.fields if f.type == "time"), None)
        if times is None:
            continue
        when = [datetime.datetime.fromtimestamp(t / 1000) for t in times.values]
        bottom = [0.0] * len(when)
        for field in frame.fields:
            if field.type != "number":
                continue
            label = getattr(frame, "legend", None) and grafana._legend(frame.legend, frame.labels) or field.name
            if bars:
                ax.bar(when, field.values, bottom=bottom, width=50 / 86400, align="edge", label=label)
                bottom = [b + v for b, v in zip(bottom, field.values)]
            else:
                ax.plot(when, field.values, marker="o" if len(when) < 30 else None, label=label)
    now = datetime.datetime.now()
    ax.set_xlim(now - datetime.timedelta(minutes=30), now + datetime.timedelta(minutes=1))
    ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%H:%M"))
    handles, labels = ax.get_legend_handles_labels()
    if labels:
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.tick_params(labelsize=7)
    ax.figure.autofmt_xdate()


def _draw(ax, panel, data):
    ax.set_title(panel["title"], fontsize=10, loc="left")
    if not data:
        ax.text(0.5, 0.5, "No data", ha="center", va="center", fontsize=14, color="grey")
        ax.axis("off")
        return
    kind = panel["type"]
    if kind == "timeseries":
        _time_series(ax, panel, data)
    elif kind == "table":
        columns, rows = grafana.table_rows(data)
        ax.axis("off")
        cells = [[f"{v:g}" if isinstance(v, float) else str(v) for v in row] for row in rows[:15]]
        if cells:
            table = ax.table(cellText=cells, colLabels=columns, loc="upper center", cellLoc="left")
            table.auto_set_font_size(False)
            table.set_fontsize(8)
    else:
        shown = [(name, value) for name, value in grafana.display_values(panel, data) if value is not None]
        if kind == "bargauge":
            shown = shown[:15][::-1]
            ax.barh(range(len(shown)), [value for _, value in shown], color="#5794f2")
            ax.set_yticks([])
            for i, (name, value) in enumerate(shown):
                ax.text(0, i, f" {name}  {value:g}", va="center", fontsize=7)
            ax.tick_params(labelsize=7)
        elif kind == "piechart":
            ax.pie([value for _, value in shown], labels=[f"{name} {value:g}" for name, value in shown],
                   autopct="%1.0f%%", textprops={"fontsize": 8})
        else:  # stat
            ax.axis("off")
            for i, (name, value) in enumerate(shown):
                y = 1 - (i + 0.5) / len(shown)
                color = "red" if value in (0, -1) and "up" in panel["title"].lower() + name else "black"
                ax.text(0.5, y, f"{name}: {value:g}" if len(shown) > 1 else f"{value:g}", ha="center",
                        va="center", fontsize=20 if len(shown) == 1 else 11, color=color)


def _whole(dashboard, shown, path):
    """The whole dashboard in one picture, each panel where its gridPos puts it."""
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    figure = plt.figure(figsize=(16, bottom * 0.42))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        left, width = grid["x"] / 24 + 0.03, grid["w"] / 24 - 0.05
        top = 1 - grid["y"] / bottom
        ax = figure.add_axes([left, top - grid["h"] / bottom + 0.05 * 8 / bottom, width, grid["h"] / bottom * 0.72])
        _draw(ax, panel, shown.get((dashboard["uid"], panel["id"])))
    figure.suptitle(f"{dashboard['title']} (drawn from the frames Grafana would get)", fontsize=10, x=0.02, ha="left")
    figure.savefig(path, dpi=70)
    plt.close(figure)


def draw(dashboard, shown, directory):
    """One PNG per row of panels (same gridPos.y) and one of the whole dashboard; returns
    the paths written."""
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for panel in dashboard["panels"]:
        rows.setdefault(panel["gridPos"]["y"], []).append(panel)
    written = []
    for number, (_, panels) in enumerate(sorted(rows.items()), 1):
        panels.sort(key=lambda p: p["gridPos"]["x"])
        height = max(p["gridPos"]["h"] for p in panels)
        figure = plt.figure(figsize=(16, height * 0.45))
        for panel in panels:
            grid = panel["gridPos"]
            ax = figure.add_axes([grid["x"] / 24 + 0.03, 0.12, grid["w"] / 24 - 0.05, 0.75])
            _draw(ax, panel, shown.get((dashboard["uid"], panel["id"])))
        figure.suptitle(f"{dashboard['title']} (drawn from the frames Grafana would get)", fontsize=9, x=0.02, ha="left")
        path = out / f"{dashboard['uid']}-row{number}.png"
        figure.savefig(path, dpi=80)
        plt.close(figure)
        written.append(str(path))
    whole = out / f"{dashboard['uid']}.png"
    _whole(dashboard, shown, whole)
    written.append(str(whole))
    return written
