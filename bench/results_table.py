#!/usr/bin/env python3
"""The benchmark's results tables (docs/benchmark.md), made from bench/results/latest.json.

Prints the markdown that belongs between docs/benchmark.md's `<!-- bench:begin -->` and
`<!-- bench:end -->` markers; with --check docs/benchmark.md, exits 1 if the page holds
anything else there (scripts/test runs the check, so the page's numbers are the
committed run's).
"""

import argparse
import json
import pathlib
import sys

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
NO_RUN = "No full run is committed yet (`bench/results/latest.json` is absent); the figures measured so far are in the issue notes.\n"


def number(value, digits=0):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}".replace(",", " ")


def workers(settings):
    """The services' tokio workers, for runs that recorded them."""
    threads = settings.get("service_worker_threads")
    if threads is None:
        return ""
    if threads == 0:
        return ", tokio's default workers in each service"
    return f", {threads} tokio worker{'s' if threads > 1 else ''} per service"


def render(results):
    machine = results["machine"]
    lines = [
        f"Run of {results['date'][:10]} at commit `{results['commit']}` ({results['mode']} run), "
        f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']:.0f} GiB, "
        f"Linux {machine['kernel']}; everything (generator, services, Kafka, Redis, FerretDB) on the same cores. "
        f"Settings: {results['settings']['connections']} connections for single votes, "
        f"{results['settings']['batch_connections']} for batches of {results['settings']['batch_size']}, "
        f"{results['settings']['measure_s']:.0f} s measured per load scenario{workers(results['settings'])}. "
        f"Steal: the share of all cores' time the hypervisor gave to other guests during the scenario "
        f"(`/proc/stat`); a scenario with more steal ran on a smaller machine than its ceiling.",
        "",
        "| scenario | votes/s | p50 ms | p99 ms | p99.9 ms | steal | CPU s in the scenario (process: seconds) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for label, scenario in results["scenarios"].items():
        busy = sorted(
            ((name, usage["cpu_seconds"]) for name, usage in scenario["processes"].items() if usage["cpu_seconds"] >= 0.1),
            key=lambda item: -item[1],
        )
        lines.append(
            f"| {label} | {number(scenario.get('votes_per_s'))} | {number(scenario.get('p50_ms'), 2)} "
            f"| {number(scenario.get('p99_ms'), 2)} | {number(scenario.get('p999_ms'), 2)} "
            f"| {scenario['machine_cpu']['steal_pct']:.0f} % "
            f"| {', '.join(f'{name} {seconds:.1f}' for name, seconds in busy)} |"
        )
    lines += ["", "| target | this run | rule | met |", "|---|---:|---|---|"]
    for target in results["targets"]:
        lines.append(
            f"| {target['name']} | {target['value']:.3f} | {target['rule']} {target['target']:g} "
            f"| {'yes' if target['met'] else '**no**'} |"
        )
    check = results["verification"]
    lines += [
        "",
        f"Ratios: {', '.join(f'{key} {value:.3f}' for key, value in results['ratios'].items())}. "
        f"Checked at the end: accepted={check['accepted']} counted={check['counted']} logged={check['logged']} "
        f"(unanswered {check['unanswered']}).",
    ]
    for label in ("fresh-rest", "fresh-grpc"):
        fresh = results["scenarios"].get(label, {}).get("freshness")
        if fresh:
            lines.append("")
            lines.append(
                f"{label}: accepted -> visible in Redis over {fresh['votes']} votes (1 in {fresh['sampled_one_in']} tracked): p50 {fresh['p50_ms']:.1f} ms, "
                f"p99 {fresh['p99_ms']:.1f} ms, max {fresh['max_ms']:.1f} ms (Redis polled every "
                f"{fresh['poll_interval_ms']} ms); never seen: {fresh['never_seen']}."
            )
    stage_rows = [
        f"| {label} | {stage['stage']} | {stage['observations'] if stage['observations'] is not None else 'windows'} "
        f"| {stage['p50_ms']:.2f} | {stage['p99_ms']:.2f} |"
        for label in ("fresh-rest", "fresh-grpc")
        for stage in results["scenarios"].get(label, {}).get("stages", [])
    ]
    if stage_rows:
        lines += [
            "",
            "Where the accept latency of the open-loop scenarios goes: each stage's own histogram "
            "(Prometheus buckets, quantiles estimated as `histogram_quantile` does), over the scenario "
            "and its warm-up. Each stage includes the ones below it."
            + (
                " The rows after Kafka's acknowledgement split it as librdkafka reports it (time queued "
                "in the client, linger included; waiting in the send buffer; the broker's round trip), "
                "read from its statistics windows (every second in a bench run, `--kafka-statistics-ms`): "
                "the median window's p50 and the worst window's p99, which bounds the scenario's p99 "
                "from above."
                if any(stage["observations"] is None for label in ("fresh-rest", "fresh-grpc")
                       for stage in results["scenarios"].get(label, {}).get("stages", []))
                else ""
            ),
            "",
            "| scenario | stage | observations | p50 ms | p99 ms |",
            "|---|---|---:|---:|---:|",
            *stage_rows,
        ]
    lines += ["", *cpu_per_vote(results["scenarios"])]
    return "\n".join(lines) + "\n"


def cpu_per_vote(scenarios):
    """CPU microseconds per accepted vote, per process, on the paths gRPC-or-REST compares."""
    paths = [
        ("rest", "rest-client", "rest-server"),
        ("grpc", "grpc-client", "grpc-server"),
        ("rest-hop", None, "rest-server"),
        ("grpc-hop", None, "grpc-server"),
        ("batch-rest", "rest-client", "rest-server"),
        ("batch-grpc", None, "grpc-server"),
    ]
    lines = [
        "CPU per accepted vote (microseconds; process CPU seconds / votes in the scenario):",
        "",
        "| scenario | votes/s | front | server | kafka | generator | all processes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, front, server in paths:
        scenario = scenarios.get(label)
        if not scenario or not scenario.get("votes_per_s"):
            continue
        votes = scenario["votes_per_s"] * scenario["seconds"]
        usage = {name: 1e6 * used["cpu_seconds"] / votes for name, used in scenario["processes"].items()}
        cell = lambda name: number(usage.get(name)) if name else "-"  # noqa: E731
        lines.append(
            f"| {label} | {number(scenario['votes_per_s'])} | {cell(front)} | {cell(server)} | {cell('kafka')} "
            f"| {cell('voteflow-bench')} | {number(sum(usage.values()))} |"
        )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=pathlib.Path(__file__).parent / "results" / "latest.json")
    parser.add_argument("--check", metavar="PAGE", help="fail unless PAGE's bench block is this table")
    args = parser.parse_args()
    results = pathlib.Path(args.results)
    table = render(json.loads(results.read_text())) if results.exists() else NO_RUN
    if not args.check:
        sys.stdout.write(table)
        return 0
    readme = pathlib.Path(args.check).read_text()
    if BEGIN not in readme or END not in readme:
        print(f"{args.check}: no {BEGIN} ... {END} block", file=sys.stderr)
        return 1
    current = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    if current != table:
        print(f"{args.check}: the bench block differs from {args.results}; run bench/results_table.py", file=sys.stderr)
        return 1
    print(f"{args.check}: bench block matches {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
