"""Runs kube-score on rendered overlays and fails on every finding that
k8s/kube-score-waivers.yaml does not waive, and on a waiver that matches nothing.

    python3 k8s/kube_score.py KUBE_SCORE local=rendered-local.yaml gke=rendered-gke.yaml ...
"""

import json
import pathlib
import subprocess
import sys

import yaml

WAIVERS = pathlib.Path(__file__).resolve().parent / "kube-score-waivers.yaml"
# kube-score's grades: 1 critical, 5 warning, 7 almost OK, 10 OK.
FAILING_GRADE = 5


def findings(kube_score, rendered):
    out = subprocess.run([kube_score, "score", "--output-format", "json", rendered],
                         capture_output=True, text=True, check=False)
    if not out.stdout.strip():
        sys.exit(f"kube-score failed on {rendered}: {out.stderr}")
    for obj in json.loads(out.stdout):
        for check in obj["checks"]:
            if check["skipped"] or check["grade"] > FAILING_GRADE:
                continue
            for comment in check.get("comments") or [{"path": "", "summary": check["check"]["name"]}]:
                name = obj["object_name"].rsplit("/", 1)[-1]
                yield name, check["check"]["id"], comment.get("path", ""), comment["summary"]


def main():
    kube_score, rendered = sys.argv[1], sys.argv[2:]
    waivers = yaml.safe_load(WAIVERS.read_text())
    used = [0] * len(waivers)
    counts = {}
    unwaived = []
    for arg in rendered:
        overlay, path = arg.split("=", 1)
        counts[path] = 0
        for name, check, container, summary in findings(kube_score, path):
            counts[path] += 1
            match = [i for i, w in enumerate(waivers) if w["check"] == check
                     and ("*" in w["objects"] or name in w["objects"])
                     and (not w.get("overlays") or overlay in w["overlays"])]
            for i in match:
                used[i] += 1
            if not match:
                unwaived.append(f"{overlay}: {name} {check} ({container}): {summary}")
    for line in unwaived:
        print(f"kube-score: BROKEN: {line}")
    for waiver, n in zip(waivers, used):
        if n == 0:
            print(f"kube-score: BROKEN: the waiver of {waiver['check']} for {waiver['objects']} matches nothing; drop it")
    total = sum(counts.values())
    print(f"kube-score: {total} findings in {len(rendered)} overlays, {total - len(unwaived)} waived with a reason, "
          f"{len(unwaived)} not")
    sys.exit(1 if unwaived or 0 in used else 0)


if __name__ == "__main__":
    main()
