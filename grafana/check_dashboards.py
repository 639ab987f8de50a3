"""Checks the dashboards of grafana/dashboards as a person would see them after a load:
every panel's queries run against the real Prometheus and Redis, turned into frames as
Grafana and its redis-datasource plugin do (grafana/frames.py), its transformations
applied, then what the panel draws is asserted: the leaderboard has one row per band,
ranked 1..n, most votes first, its top row the band Redis ranks first; bars and slices
match Redis; time series have a time field; every `by (...)` label of a PromQL query is
present and non-empty. With --services-down (run after the services were stopped) every
panel must still show a value now, and the "up" panels must show 0, not No data.

    python3 grafana/check_dashboards.py --prometheus URL --redis-port PORT [--services-down]
        [--pictures DIR] DASHBOARD.json...
"""

import argparse
import json
import re
import sys
import time

import redis

import frames as grafana

PREFIX = "voteflow:"
# How old a series' last sample may be and still be "now": after a load, a few scrape
# intervals; with the services stopped, under two query steps, so a series that went
# stale when its service stopped does not pass for a value now.
TOLERANCE_S = {False: 30, True: 4}


class Checker:
    def __init__(self, client, prometheus_url, down):
        self.redis = client
        self.prometheus = prometheus_url
        self.down = down
        self.broken = []
        self.checked = 0

    def check(self, ok, message):
        self.checked += 1
        if not ok:
            self.broken.append(message)

    def hash(self, key):
        reply = self.redis.hgetall(key)
        return {k.decode(): float(v) for k, v in reply.items()}

    def panel(self, dashboard, panel):
        where = f"{dashboard['uid']} / {panel['title']}"
        try:
            data = grafana.panel_data(panel, self.raw, self.prometheus)
        except Exception as error:  # a query Grafana could not show is a broken panel
            self.check(False, f"{where}: {error}")
            return None
        kinds = {(t.get("datasource") or {}).get("type") for t in panel.get("targets", [])}
        if "prometheus" in kinds:
            self.prometheus_panel(where, panel, data)
        else:
            self.redis_panel(where, panel, data)
        return data

    def prometheus_panel(self, where, panel, data):
        self.check(bool(data), f"{where}: No data")
        now_ms = time.time() * 1000
        recent = [f for f in data if f.fields[0].values and now_ms - f.fields[0].values[-1] < TOLERANCE_S[self.down] * 1000]
        data = recent if self.down else data
        self.check(bool(recent), f"{where}: no value now (the panel would show No data)")
        if not self.down:
            for target in panel["targets"]:
                # The query without its fallback for a stopped service (`or vector(0)`), now:
                # each of its series must carry every label it groups by.
                measured = re.split(r"\s+or\s+(on\(\)\s+)?vector\(0\)|\s+or\s+\(absent", target["expr"])[0]
                labels = re.findall(r"by \(([^)]*)\)", measured)
                wanted = {label.strip() for group in labels for label in group.split(",")} - {"le"}
                series = grafana.prometheus_instant(self.prometheus, measured)
                self.check(bool(series), f"{where}: {measured} returns nothing after the load")
                for labels_of in series:
                    missing = [label for label in sorted(wanted) if not labels_of.get(label)]
                    self.check(not missing, f"{where}: a series lacks {missing} ({labels_of}) grouping by them in {measured}")
        if panel["title"] in ("Replicas up", "Sinks up"):
            shown = grafana.display_values(panel, data)
            want = (lambda v: v == 0) if self.down else (lambda v: v >= 1)
            self.check(len(shown) == len(panel["targets"]) and all(want(v) for _, v in shown),
                       f"{where}: shows {shown}, want {'0' if self.down else '>= 1'} for each")
        if panel["title"] == "Consumer lag (records)" and self.down:
            shown = grafana.display_values(panel, data)
            self.check(shown and shown[0][1] == -1, f"{where}: shows {shown}, want -1 ('consumer down')")

    def redis_panel(self, where, panel, data):
        title = panel["title"]
        if panel["type"] == "timeseries":
            self.check(data and all(any(f.type == "time" for f in frame.fields) for frame in data),
                       f"{where}: no time field (a time series panel would not draw)")
            numbers = [f for frame in data for f in frame.fields if f.type == "number"]
            self.check(bool(numbers) and data[0].length() > 0, f"{where}: no series")
            key = panel["targets"][0]["keyName"]
            if key.endswith("history:band"):
                bands = set(self.hash(PREFIX + "votes:band"))
                names = {f.name for f in numbers} - {"(others)"}
                self.check(names <= bands, f"{where}: draws {sorted(names - bands)}, which are no bands")
            if key.endswith("history:path"):
                self.check({f.name for f in numbers} <= {"rest", "grpc"}, f"{where}: paths {[f.name for f in numbers]}")
            return
        if title == "Leaderboard":
            columns, rows = grafana.table_rows(data)
            self.check(columns == ["Rank", "Band", "Votes"], f"{where}: columns {columns}, want Rank, Band, Votes")
            if columns != ["Rank", "Band", "Votes"]:
                return
            ranked = [(m.decode(), s) for m, s in self.redis.zrevrange(PREFIX + "leaderboard", 0, -1, withscores=True)]
            bands = [row[1] for row in rows]
            votes = [row[2] for row in rows]
            self.check(len(rows) == len(ranked) and len(set(bands)) == len(bands),
                       f"{where}: {len(rows)} rows for {len(ranked)} bands (one row per band)")
            self.check(votes == sorted(votes, reverse=True), f"{where}: not sorted by votes: {votes[:10]}")
            self.check([row[0] for row in rows] == list(range(1, len(rows) + 1)), f"{where}: ranks {[r[0] for r in rows][:10]}")
            self.check(rows and rows[0][1] == ranked[0][0] and rows[0][2] == ranked[0][1],
                       f"{where}: top row {rows[:1]}, Redis ranks {ranked[:1]} first")
            self.check(dict(zip(bands, votes)) == dict(ranked), f"{where}: votes differ from the sorted set")
            return
        shown = grafana.display_values(panel, data)
        self.check(bool(shown), f"{where}: No data")
        if title == "Votes counted":
            total = float(self.redis.get(PREFIX + "total") or 0)
            self.check(shown == [("Value", total)] or [v for _, v in shown] == [total], f"{where}: {shown}, Redis {total}")
        elif title == "gRPC or REST":
            self.check(dict(shown) == self.hash(PREFIX + "votes:path"), f"{where}: {shown}")
        elif title in ("Votes per band", "Votes per album"):
            key = PREFIX + ("votes:band" if title == "Votes per band" else "votes:album")
            counts = self.hash(key)
            values = [v for _, v in shown]
            limit = panel.get("options", {}).get("reduceOptions", {}).get("limit") or len(counts)
            self.check(values == sorted(values, reverse=True), f"{where}: bars not sorted: {values[:10]}")
            self.check(len(shown) == min(limit, len(counts)), f"{where}: {len(shown)} bars for {len(counts)} entries")
            self.check(all(counts.get(name) == value for name, value in shown), f"{where}: bars differ from {key}")
            self.check(values and values[0] == max(counts.values()), f"{where}: the top bar is not the most voted")
            if title == "Votes per album":
                self.check(all(" — " in name for name, _ in shown), f"{where}: album bars without their band")


def range_seconds(dashboard):
    """Seconds of the dashboard's time range (`now-3h`, `now-30m`), which its panels draw."""
    amount, unit = re.fullmatch(r"now-(\d+)([smhd])", dashboard["time"]["from"]).groups()
    return int(amount) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def newest_minute_ms(client):
    """The newest minute in the band history stream, in ms (0 when there is none)."""
    newest = client.xrevrange(PREFIX + "history:band", count=1)
    return int(newest[0][0].split(b"-")[0]) if newest else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--services-down", action="store_true")
    parser.add_argument("--pictures", help="write a PNG per dashboard row into this directory")
    parser.add_argument("--wait-history", type=int, default=75,
                        help="seconds to wait for the first minute of history to close")
    parser.add_argument("dashboards", nargs="+")
    args = parser.parse_args()
    client = redis.Redis(port=args.redis_port)
    # The plugin reads Redis's replies as they come: no client-side reshaping of them.
    raw = redis.Redis(port=args.redis_port)
    raw.response_callbacks.clear()
    checker = Checker(client, args.prometheus, args.services_down)
    checker.raw = raw
    # The history panels draw the dashboard's time range: wait for a closed minute inside it
    # (a minute closes at most a minute after its votes; a stack kept from days before has
    # older minutes only, which the panels do not show).
    ranges = []
    for path in args.dashboards:
        with open(path, encoding="utf-8") as file:
            ranges.append(range_seconds(json.load(file)))
    shown_since_ms = (time.time() - min(ranges)) * 1000
    deadline = time.time() + args.wait_history
    while not args.services_down and newest_minute_ms(client) < shown_since_ms and time.time() < deadline:
        time.sleep(1)
    shown = {}
    for path in args.dashboards:
        with open(path, encoding="utf-8") as file:
            dashboard = json.load(file)
        if args.services_down and not any((p.get("datasource") or {}).get("type") == "prometheus"
                                          for p in dashboard["panels"]):
            continue  # Redis keeps its counts when the services stop
        for panel in dashboard["panels"]:
            shown[(dashboard["uid"], panel["id"])] = checker.panel(dashboard, panel)
        if args.pictures:
            import pictures
            for written in pictures.draw(dashboard, shown, args.pictures):
                print(f"dashboards: drew {written}")
    for message in checker.broken:
        print(f"dashboards: BROKEN: {message}")
    state = "with the services stopped" if args.services_down else "after the load"
    print(f"dashboards {state}: {checker.checked - len(checker.broken)} of {checker.checked} checks of what "
          f"the panels show hold")
    sys.exit(1 if checker.broken or not checker.checked else 0)


if __name__ == "__main__":
    main()
