"""What a Grafana panel of voteflow's dashboards shows, worked out without a Grafana server:
the data frames its datasource returns for its queries, its transformations applied, and
what its visualisation then draws (table rows, bars, slices, series, a stat's value).

Redis queries are answered as the redis-datasource plugin 2.2.0 (the version the k8s
manifests install) builds frames, read from its Go sources at tag v2.2.0 of
RedisGrafana/grafana-redis-datasource:
- pkg/redis-hash.go (HGETALL) and pkg/redis-zset.go (ZRANGE ... WITHSCORES): ONE row, one
  field per hash field or set member (a number when it parses as one), in reply order;
- pkg/query.go + pkg/data-frame.go (GET and the other one-key commands): a frame named by
  the key with one field `Value`;
- pkg/redis-stream.go (XRANGE/XREVRANGE): fields `$streamId`, `$time` (from the entry ID's
  milliseconds) and one field per entry key in order of first appearance, 0 (or "") where
  an entry lacks it; the dashboard's time range bounds the IDs unless start/end are set.
Transformations follow Grafana's sources (packages/grafana-data/src/transformations/
transformers: reduce.ts seriesToRows, sortBy.ts, calculateField.ts index and binary,
organize.ts). A transformation this module does not know is an error, not a pass.
"""

import json
import math
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field as dataclass_field


@dataclass
class Field:
    name: str
    type: str  # "number", "string" or "time"
    values: list


@dataclass
class Frame:
    name: str
    fields: list = dataclass_field(default_factory=list)

    def length(self):
        return len(self.fields[0].values) if self.fields else 0

    def field(self, name):
        return next((f for f in self.fields if f.name == name), None)


def _number_or_string(name, text):
    try:
        return Field(name, "number", [float(text)])
    except ValueError:
        return Field(name, "string", [text])


# --- redis-datasource 2.2.0 ------------------------------------------------------------


def _decode(value):
    return value.decode() if isinstance(value, bytes) else value


def redis_frames(client, target, time_from_ms, time_to_ms):
    """The frames redis-datasource 2.2.0 returns for one query target."""
    if target.get("query"):
        raise ValueError("custom commands are not emulated; use a command")
    command, key = target["command"], target.get("keyName", "")
    if command == "hgetall":
        reply = [_decode(v) for v in client.execute_command("HGETALL", key)]
        return [Frame(command, [_number_or_string(reply[i], reply[i + 1]) for i in range(0, len(reply), 2)])]
    if command == "zrange":
        args = [key, target.get("min", ""), target.get("max", "")]
        if target.get("zrangeQuery"):
            args.append(target["zrangeQuery"])
        reply = [_decode(v) for v in client.execute_command("ZRANGE", *args, "WITHSCORES")]
        return [Frame(command, [_number_or_string(reply[i], reply[i + 1]) for i in range(0, len(reply), 2)])]
    if command in ("get", "type", "ttl", "hlen", "xlen", "llen", "scard"):
        value = _decode(client.execute_command(command.upper(), key))
        return [Frame(key, [_number_or_string("Value", "" if value is None else str(value))])]
    if command in ("xrange", "xrevrange"):
        start = target.get("start") or f"{time_from_ms}-0"
        end = target.get("end") or f"{time_to_ms}-0"
        args = [key, start, end] if command == "xrange" else [key, end, start]
        if target.get("count"):
            args += ["COUNT", target["count"]]
        reply = client.execute_command(command.upper(), *args)
        ids, times, by_key, order = [], [], {}, []
        for entry_id, pairs in reply:
            entry_id = _decode(entry_id)
            ids.append(entry_id)
            times.append(int(entry_id.split("-")[0]))
            values = dict(zip([_decode(k) for k in pairs[0::2]], [_decode(v) for v in pairs[1::2]]))
            for name, value in values.items():
                if name not in by_key:
                    kind = "number" if _number_or_string(name, value).type == "number" else "string"
                    by_key[name] = Field(name, kind, [0.0 if kind == "number" else ""] * (len(ids) - 1))
                    order.append(name)
            for name in order:
                value = values.get(name)
                field = by_key[name]
                if value is None:
                    field.values.append(0.0 if field.type == "number" else "")
                else:
                    field.values.append(float(value) if field.type == "number" else value)
        fields = [Field("$streamId", "string", ids), Field("$time", "time", times)] + [by_key[n] for n in order]
        return [Frame(command, fields)]
    raise ValueError(f"the emulation does not know redis-datasource's {command!r}")


# --- Prometheus ------------------------------------------------------------------------


def prometheus_frames(url, target, time_from_s, time_to_s):
    """Frames of a PromQL range query, one per series (time + value), with its labels."""
    query = urllib.parse.urlencode({"query": target["expr"], "start": time_from_s, "end": time_to_s,
                                    "step": max(2, (time_to_s - time_from_s) // 300)})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{query}", timeout=10) as response:
        answer = json.load(response)
    if answer.get("status") != "success":
        raise ValueError(f"Prometheus refused {target['expr']}: {answer}")
    frames = []
    for series in answer["data"]["result"]:
        labels = series["metric"]
        name = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or target["expr"]
        frame = Frame(name, [Field("Time", "time", [int(float(t) * 1000) for t, _ in series["values"]]),
                             Field("Value", "number", [float(v) for _, v in series["values"]])])
        frame.labels = labels
        frames.append(frame)
    return frames


def prometheus_instant(url, expr):
    """The label sets of a PromQL query's series now."""
    query = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=10) as response:
        answer = json.load(response)
    if answer.get("status") != "success":
        raise ValueError(f"Prometheus refused {expr}: {answer}")
    return [series["metric"] for series in answer["data"]["result"]]


# --- transformations (Grafana's packages/grafana-data/src/transformations) --------------

REDUCERS = {
    "max": ("Max", max),
    "min": ("Min", min),
    "sum": ("Total", sum),
    "lastNotNull": ("Last *", lambda values: values[-1]),
}


def _reduce(frames, options):
    if options.get("mode", "seriesToRows") != "seriesToRows":
        raise ValueError(f"reduce mode {options.get('mode')} is not emulated")
    reducers = options.get("reducers") or ["max"]
    merged = None
    for frame in frames:
        source = [f for f in frame.fields if f.type != "time"]
        out = Frame(frame.name, [Field("Field", "string", [f.name for f in source])])
        for reducer in reducers:
            name, fn = REDUCERS[reducer]
            numbers = [[v for v in f.values if v is not None and not (isinstance(v, float) and math.isnan(v))]
                       for f in source]
            out.fields.append(Field(name, "number", [fn(v) if v else None for v in numbers]))
        if merged is None:
            merged = out
        else:  # mergeResults: same-named fields of later frames appended
            for base in merged.fields:
                other = out.field(base.name)
                if other:
                    base.values += other.values
    return [merged] if merged else []


def _sort_by(frames, options):
    out = []
    for frame in frames:
        spec = (options.get("sort") or [{}])[0]
        key = frame.field(spec.get("field"))
        if key is None:
            out.append(frame)  # Grafana leaves a frame without the field as it is
            continue
        order = sorted(range(frame.length()), key=lambda i: (key.values[i] is None, key.values[i]),
                       reverse=bool(spec.get("desc")))
        if spec.get("desc"):  # None sorts last either way
            order = [i for i in order if key.values[i] is not None] + [i for i in order if key.values[i] is None]
        out.append(Frame(frame.name, [Field(f.name, f.type, [f.values[i] for i in order]) for f in frame.fields]))
    return out


def _calculate_field(frames, options):
    mode = options.get("mode", "reduceRow")
    out = []
    for frame in frames:
        if mode == "index":
            values = list(range(frame.length()))
            if (options.get("index") or {}).get("asPercentile"):
                values = [v / len(values) for v in values]
            new = Field(options.get("alias") or "Row", "number", values)
        elif mode == "binary":
            binary = options["binary"]
            left = frame.field((binary["left"].get("matcher") or {}).get("options") if isinstance(binary["left"], dict)
                               else binary["left"])
            right = (binary["right"] or {}).get("fixed") if isinstance(binary["right"], dict) else binary["right"]
            if left is None or right in (None, ""):
                raise ValueError(f"calculateField binary {binary} is not emulated")
            ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
            values = [ops[binary["operator"]](v, float(right)) for v in left.values]
            new = Field(options.get("alias") or f"{left.name} {binary['operator']} {right}", "number", values)
        else:
            raise ValueError(f"calculateField mode {mode} is not emulated")
        fields = [new] if options.get("replaceFields") else frame.fields + [new]
        out.append(Frame(frame.name, fields))
    return out


def _organize(frames, options):
    exclude = options.get("excludeByName") or {}
    order = options.get("indexByName") or {}
    rename = options.get("renameByName") or {}
    out = []
    for frame in frames:
        kept = [f for f in frame.fields if not exclude.get(f.name)]
        if order:
            kept.sort(key=lambda f: order.get(f.name, len(order)))
        out.append(Frame(frame.name, [Field(rename.get(f.name) or f.name, f.type, f.values) for f in kept]))
    return out


def _limit(frames, options):
    limit = options.get("limitField", 10)
    return [Frame(f.name, [Field(x.name, x.type, x.values[:limit]) for x in f.fields]) for f in frames]


TRANSFORMATIONS = {"reduce": _reduce, "sortBy": _sort_by, "calculateField": _calculate_field,
                   "organize": _organize, "limit": _limit}


def transform(frames, transformations):
    for step in transformations or []:
        if step.get("disabled"):
            continue
        apply = TRANSFORMATIONS.get(step["id"])
        if apply is None:
            raise ValueError(f"transformation {step['id']} is not emulated: the check cannot say what it shows")
        frames = apply(frames, step.get("options") or {})
    return frames


# --- what a panel shows ----------------------------------------------------------------


def panel_data(panel, redis_client, prometheus_url, window_s=600):
    """The frames a panel draws over the last `window_s` seconds, after its queries and
    transformations."""
    now_s = int(time.time())
    frames = []
    for target in panel.get("targets", []):
        kind = (target.get("datasource") or panel.get("datasource") or {}).get("type")
        if kind == "redis-datasource":
            frames += redis_frames(redis_client, target, (now_s - window_s) * 1000, now_s * 1000)
        elif kind == "prometheus":
            got = prometheus_frames(prometheus_url, target, now_s - window_s, now_s)
            for frame in got:
                frame.ref = target.get("refId")
                frame.legend = target.get("legendFormat")
            frames += got
        else:
            raise ValueError(f"panel {panel['title']}: datasource {kind} is not emulated")
    return transform(frames, panel.get("transformations"))


def display_values(panel, frames):
    """[(name, value)] as a stat, bar gauge or pie chart draws them: one per numeric field
    (reduced with the panel's calculation), or one per row when `values` is on."""
    options = (panel.get("options") or {}).get("reduceOptions") or {}
    calc = (options.get("calcs") or ["lastNotNull"])[0]
    shown = []
    for frame in frames:
        numbers = [f for f in frame.fields if f.type == "number"]
        if options.get("values"):
            names = next((f for f in frame.fields if f.type == "string"), None)
            for i in range(frame.length()):
                for number in numbers:
                    shown.append((names.values[i] if names else number.name, number.values[i]))
        else:
            for number in numbers:
                values = [v for v in number.values if v is not None]
                name = getattr(frame, "legend", None) or (number.name if number.name != "Value" else frame.name)
                shown.append((_legend(name, getattr(frame, "labels", {})), REDUCERS[calc][1](values) if values else None))
    limit = options.get("limit")
    return shown[:limit] if limit else shown


def _legend(text, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), text or "")


def table_rows(frames):
    """(column names, rows) of the first frame, as a table panel shows it."""
    if not frames:
        return [], []
    frame = frames[0]
    return [f.name for f in frame.fields], [[f.values[i] for f in frame.fields] for i in range(frame.length())]
