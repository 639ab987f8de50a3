"""Checks what the rendered manifests promise (scripts/test runs it on every overlay):

    kubectl kustomize k8s/overlays/gke | python k8s/promises.py gke

Probes on the endpoints each binary really serves, the consumer's drain inside its grace
period and session, the HPA's bounds, a PDB per Deployment, non-root containers with
requests and limits, data on PersistentVolumeClaims, Kafka's brokers, voters and
min.insync.replicas per overlay, NetworkPolicies (default deny; Kafka, Redis and MongoDB
admit only their clients), the ingress routes and the 50/50 split, and no credentials in
the manifests (only Secret references, to the Secrets the README creates). Exits 1 with one line per broken promise.
"""

import sys

import yaml

# Where each binary serves /healthz, /readyz and /metrics (the Dockerfile's listen defaults).
ADMIN_PORTS = {"rest-client": 8000, "rest-server": 8080, "grpc-client": 3000, "grpc-server": 9301, "consumer": 9100}
# Partitions of `votes`: the HPA's ceiling (a replica beyond it would hold no partition).
VOTES_PARTITIONS = 12
CREDENTIAL_WORDS = ("PASSWORD", "SECRET", "TOKEN")
# The Secrets the README has the operator create.
SECRETS = {"voteflow-redis", "voteflow-mongodb", "voteflow-grafana"}
KAFKA_BROKERS = {"gke": 3, "gke-keda": 3, "local": 1}
# Who may open connections to whom (pod name label -> allowed client pod names).
ALLOWED_CLIENTS = {
    "kafka": {"rest-server", "grpc-server", "consumer", "kafka-topics", "kafka"},
    "redis": {"consumer", "grafana"},
    "mongodb": {"consumer"},
}


def check_network_policies(policies, check):
    """Ingress is denied by default, and the datastores admit only their clients."""
    default_deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")]
    check(len(default_deny) == 1, "NetworkPolicy: no default deny of ingress")
    for target, allowed in ALLOWED_CLIENTS.items():
        clients = set()
        for policy in policies:
            if policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") != target:
                continue
            for rule in policy["spec"].get("ingress", []):
                for source in rule.get("from", []):
                    check("podSelector" in source and len(source) == 1,
                          f"NetworkPolicy {target}: admits a source that is not a pod of the namespace: {source}")
                    clients.add(source.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name"))
        check(clients == allowed, f"NetworkPolicy {target}: admits {sorted(map(str, clients))}, want {sorted(allowed)}")


def main():
    overlay = sys.argv[1] if len(sys.argv) > 1 else "?"
    objects = [o for o in yaml.safe_load_all(sys.stdin) if o]
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    broken, checked = [], 0

    def check(ok, message):
        nonlocal checked
        checked += 1
        if not ok:
            broken.append(message)

    all_deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    deployments = {name: d for name, d in all_deployments.items() if name in ADMIN_PORTS}
    check(set(deployments) == set(ADMIN_PORTS), f"Deployments {sorted(deployments)} != {sorted(ADMIN_PORTS)}")
    pdb_selectors = [p["spec"]["selector"]["matchLabels"] for p in by_kind.get("PodDisruptionBudget", [])]
    workloads = list(all_deployments.values()) + by_kind.get("StatefulSet", [])
    for workload in workloads:
        name = workload["metadata"]["name"]
        for container in workload["spec"]["template"]["spec"]["containers"]:
            check("memory" in container.get("resources", {}).get("limits", {}), f"{name}: no memory limit")
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                check(ref is None or ref["name"] in SECRETS, f"{name}: reads Secret {ref} the README does not create")
    statefulsets = {s["metadata"]["name"]: s for s in by_kind.get("StatefulSet", [])}
    check(set(statefulsets) == {"kafka", "redis", "mongodb"}, f"StatefulSets {sorted(statefulsets)}")
    for name, statefulset in statefulsets.items():
        claims = statefulset["spec"].get("volumeClaimTemplates", [])
        mounts = [m["name"] for c in statefulset["spec"]["template"]["spec"]["containers"] for m in c.get("volumeMounts", [])]
        check(any(claim["metadata"]["name"] in mounts for claim in claims), f"{name}: data not on a PersistentVolumeClaim")
    kafka = statefulsets.get("kafka")
    if kafka:
        env = {e["name"]: e.get("value") for e in kafka["spec"]["template"]["spec"]["containers"][0]["env"]}
        brokers = kafka["spec"]["replicas"]
        voters = env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(",")
        check(len(voters) == brokers, f"kafka: {brokers} brokers but {len(voters)} controller voters")
        check(brokers == KAFKA_BROKERS[overlay], f"kafka: {brokers} brokers, want {KAFKA_BROKERS[overlay]} in {overlay}")
        min_isr = int(env.get("KAFKA_MIN_INSYNC_REPLICAS", 1))
        check(min_isr == max(1, brokers - 1), f"kafka: min.insync.replicas {min_isr} with {brokers} brokers")
    check_network_policies(by_kind.get("NetworkPolicy", []), check)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        check(any(all(labels.get(k) == v for k, v in s.items()) for s in pdb_selectors), f"{name}: no PDB")
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{name}: may run as root")
        for container in pod["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                get = container.get(probe, {}).get("httpGet", {})
                port = ports.get(get.get("port"), get.get("port"))
                check(get.get("path") == path and port == ADMIN_PORTS[name],
                      f"{name}: {probe} is {get} but the binary serves {path} on {ADMIN_PORTS[name]}")
            resources = container.get("resources", {})
            check({"cpu", "memory"} <= set(resources.get("requests", {})), f"{name}: no cpu/memory requests")
            check("memory" in resources.get("limits", {}), f"{name}: no memory limit")
            for env in container.get("env", []):
                value = str(env.get("value", ""))
                check(not any(w in env["name"].upper() for w in CREDENTIAL_WORDS) or "valueFrom" in env,
                      f"{name}: {env['name']} holds a credential in plain text")
                check(not ("://" in value and "@" in value.split("://", 1)[1]),
                      f"{name}: {env['name']} has credentials in its URL")
    consumer = deployments.get("consumer")
    consumer_env = {}
    if consumer:
        pod = consumer["spec"]["template"]["spec"]
        env = consumer_env = {e["name"]: e.get("value") for e in pod["containers"][0].get("env", [])}
        deadline = int(env.get("SHUTDOWN_DEADLINE_SECS", 10))
        session_ms = int(env.get("KAFKA_SESSION_TIMEOUT_MS", 45000))
        check(pod.get("terminationGracePeriodSeconds", 30) > deadline,
              "consumer: terminationGracePeriodSeconds must exceed SHUTDOWN_DEADLINE_SECS")
        check(deadline * 1000 < session_ms, "consumer: SHUTDOWN_DEADLINE_SECS must be below the session timeout")

    hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", []) if h["spec"]["scaleTargetRef"]["name"] == "consumer"]
    scaled = [o for o in by_kind.get("ScaledObject", []) if o["spec"]["scaleTargetRef"]["name"] == "consumer"]
    check(len(hpas) + len(scaled) == 1, "consumer: needs exactly one autoscaler (a CPU HPA or a KEDA ScaledObject)")
    for scaler in scaled:
        spec = scaler["spec"]
        check(spec.get("minReplicaCount") == 2 and spec.get("maxReplicaCount") == VOTES_PARTITIONS,
              f"ScaledObject: bounds {spec.get('minReplicaCount')}..{spec.get('maxReplicaCount')}")
        group = consumer_env.get("KAFKA_GROUP_ID") if consumer else None
        check(any(t["type"] == "kafka" and t["metadata"].get("consumerGroup") == group
                  and t["metadata"].get("topic") == consumer_env.get("KAFKA_TOPIC") for t in spec.get("triggers", [])),
              "ScaledObject: no kafka lag trigger on the consumer's group and topic")
    for hpa in hpas:
        spec = hpa["spec"]
        check(hpa["apiVersion"] == "autoscaling/v2", "HPA: not autoscaling/v2")
        check(spec.get("minReplicas") == 2 and spec.get("maxReplicas") == VOTES_PARTITIONS,
              f"HPA: bounds {spec.get('minReplicas')}..{spec.get('maxReplicas')}, want 2..{VOTES_PARTITIONS}")
        check(any(m.get("resource", {}).get("name") == "cpu" for m in spec.get("metrics", [])), "HPA: no CPU target")

    check(not by_kind.get("Secret"), "Secrets are in the manifests: credentials must be created in the cluster")
    routes = {}
    for ingress in by_kind.get("Ingress", []):
        canary = ingress["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/canary") == "true"
        weight = ingress["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/canary-weight")
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                routes.setdefault(path["path"], []).append((path["backend"]["service"]["name"], canary, weight))
    check(routes.get("/rest(/|$)(.*)") == [("rest-client", False, None)], "ingress: /rest does not go to rest-client")
    check(routes.get("/grpc(/|$)(.*)") == [("grpc-client", False, None)], "ingress: /grpc does not go to grpc-client")
    for path in ("/votes", "/"):
        check(sorted(routes.get(path, [])) == [("grpc-client", True, "50"), ("rest-client", False, None)],
              f"ingress: {path} is not split 50/50 between rest-client and grpc-client: {routes.get(path)}")

    for message in broken:
        print(f"k8s {overlay}: BROKEN: {message}")
    print(f"k8s {overlay}: {checked - len(broken)} of {checked} promise checks hold")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
