"""Runs every query of every dashboard in grafana/dashboards against the real services:
each PromQL expression through Prometheus' HTTP API, each Redis command through
redis-cli. Each must answer with data. scripts/dashboards runs it after a load.

    python grafana/check_queries.py PROMETHEUS_URL REDIS_PORT DASHBOARD.json...
"""

import json
import subprocess
import sys
import urllib.parse
import urllib.request


def targets(dashboard):
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            yield panel["title"], target


def prometheus(url, expr):
    query = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=10) as response:
        answer = json.load(response)
    if answer.get("status") != "success":
        return False, answer
    result = answer["data"]["result"]
    return bool(result), f"{len(result)} series, e.g. {result[0] if result else None}"


def redis(port, command, key):
    out = subprocess.run(["redis-cli", "-p", str(port), "--raw", command.upper(), key],
                         capture_output=True, text=True, timeout=10, check=False)
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    ok = out.returncode == 0 and bool(lines) and not lines[0].startswith("ERR")
    return ok, f"{len(lines)} lines, first {lines[:2]}"


def main():
    prometheus_url, redis_port, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    failed = checked = 0
    for path in files:
        with open(path, encoding="utf-8") as dashboard_file:
            dashboard = json.load(dashboard_file)
        for title, target in targets(dashboard):
            kind = target.get("datasource", {}).get("type")
            if kind == "prometheus":
                ok, detail = prometheus(prometheus_url, target["expr"])
                what = target["expr"]
            elif kind == "redis-datasource":
                ok, detail = redis(redis_port, target["command"], target["keyName"])
                what = f"{target['command'].upper()} {target['keyName']}"
            else:
                ok, detail, what = False, "unknown datasource", str(target)
            checked += 1
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {dashboard['uid']} / {title}: {what} -> {detail}")
    print(f"dashboard queries: {checked - failed} of {checked} returned data")
    sys.exit(1 if failed or not checked else 0)


if __name__ == "__main__":
    main()
