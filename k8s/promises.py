"""Checks what the rendered manifests promise (scripts/test runs it on every overlay):

    kubectl kustomize k8s/overlays/gke | python3 k8s/promises.py gke

Values are compared across the manifests, not against numbers typed in here: probe,
container, Service, scrape and NetworkPolicy ports against the port each binary listens
on (its *_LISTEN setting, from the Deployment or the Dockerfile's ENV); the topic every
service is given against the topics the Job creates; the autoscalers' maximum against the
partitions the Job creates. NetworkPolicies are evaluated as the API defines them (a pod
selected by any policy admits only what some rule of one of them allows), for every pod
of the namespace and for the clients outside it (the ingress controller, the Gateway's
load balancer, KEDA). Also: one namespace for everything; Kafka survives a node drain
(PDB and one broker per node); no fixed replica count where an autoscaler owns it;
grpc-client reaches every grpc-server pod; images by commit, pulled as they should be;
no credentials in the manifests. Exits 1 with one line per broken promise.
"""

import ipaddress
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
NAMESPACE = "voteflow"
# Each binary's listen settings (env var -> what is served there), as its settings module
# names them; the check also finds each name in that module, so a rename fails here.
BINARIES = {
    "rest-client": ("producer-rest/src/settings.rs", {"REST_CLIENT_LISTEN": "http admin"}),
    "rest-server": ("producer-rest/src/settings.rs", {"REST_SERVER_LISTEN": "http admin"}),
    "grpc-client": ("producer-grpc/src/settings.rs", {"GRPC_CLIENT_LISTEN": "http admin"}),
    "grpc-server": ("producer-grpc/src/settings.rs", {"GRPC_SERVER_LISTEN": "grpc", "GRPC_SERVER_ADMIN_LISTEN": "admin"}),
    "consumer": ("consumer/src/settings.rs", {"CONSUMER_ADMIN_LISTEN": "admin"}),
}
FRONTS = ("rest-client", "grpc-client")
CREDENTIAL_WORDS = ("PASSWORD", "SECRET", "TOKEN")
# The Secrets the README has the operator create.
SECRETS = {"voteflow-redis", "voteflow-mongodb", "voteflow-grafana"}
KAFKA_BROKERS = {"gke": 3, "gke-keda": 3, "gke-gateway": 3, "local": 1}
# Who may open connections to the datastores (pods of the namespace, by name label).
ALLOWED_CLIENTS = {
    "kafka": {"rest-server", "grpc-server", "consumer", "kafka-topics", "kafka"},
    "redis": {"consumer", "grafana"},
    "mongodb": {"consumer", "mongodb-users"},
}
# Who may open connections to the services' serving ports: the fronts only from their way in
# (checked below) and Prometheus, which scrapes that port; each server only from its front.
# So no client reaches a service directly (README, the refusals reached directly).
SERVING_CLIENTS = {
    "rest-client": {"prometheus"},
    "grpc-client": {"prometheus"},
    "rest-server": {"rest-client", "prometheus"},
    "grpc-server": {"grpc-client"},
}
# Clients from outside the namespace: (namespace, pod labels) or an address.
INGRESS_NGINX = {"namespace": "ingress-nginx", "labels": {"app.kubernetes.io/name": "ingress-nginx"}}
KEDA_OPERATOR = {"namespace": "keda", "labels": {"app": "keda-operator"}}
GATEWAY_PROXIES = [{"ip": "35.191.0.10"}, {"ip": "130.211.0.10"}]
OUTSIDER = {"namespace": "default", "labels": {"app": "anything"}}
REGISTRY_IMAGE = re.compile(r"^[a-z0-9-]+-docker\.pkg\.dev/[a-z][a-z0-9-]{4,28}[a-z0-9]/[a-z0-9-]+/([a-z-]+):([0-9a-f]{7,40}(-dirty-[0-9]+)?)$")


# --- label selectors and NetworkPolicies, as the API defines them ----------------------


def selects(selector, labels):
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def peer_matches(peer, policy_ns, source):
    if "ipBlock" in peer:
        if "ip" not in source:
            return False
        ip = ipaddress.ip_address(source["ip"])
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", []))
    if "ip" in source:
        return False
    ns_labels = {"kubernetes.io/metadata.name": source["namespace"]}
    if "namespaceSelector" in peer:
        ns_ok = selects(peer["namespaceSelector"], ns_labels)
    else:
        ns_ok = source["namespace"] == policy_ns
    pod_ok = selects(peer["podSelector"], source["labels"]) if "podSelector" in peer else True
    return ns_ok and pod_ok


def admits(policies, target_labels, source, port):
    """Whether a connection from `source` to `port` of a pod with `target_labels` is allowed."""
    applicable = [p for p in policies if selects(p["spec"]["podSelector"], target_labels)
                  and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]
    if not applicable:
        return True
    for policy in applicable:
        ns = policy["metadata"].get("namespace", NAMESPACE)
        for rule in policy["spec"].get("ingress") or []:
            ports = rule.get("ports") or []
            if ports and not any(p.get("port") == port for p in ports):
                continue
            peers = rule.get("from") or []
            if not peers or any(peer_matches(peer, ns, source) for peer in peers):
                return True
    return False


# --- reading the rendered objects ------------------------------------------------------


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def dockerfile_env():
    """The ENV defaults the image gives every binary."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for key, value in re.findall(r"(\w+)=(\S+)", line):
                env[key] = value
    return env


def binary_of(image):
    """The voteflow binary an image runs, or None for a public image."""
    name = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    return name if name in BINARIES and ("voteflow" in image) else None


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

    # One namespace for everything namespaced (a component's objects included).
    for obj in objects:
        if obj["kind"] != "Namespace":
            ns = obj["metadata"].get("namespace")
            check(ns == NAMESPACE, f"{obj['kind']} {obj['metadata']['name']}: namespace {ns}, want {NAMESPACE}")

    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    statefulsets = {s["metadata"]["name"]: s for s in by_kind.get("StatefulSet", [])}
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    policies = by_kind.get("NetworkPolicy", [])
    pdbs = by_kind.get("PodDisruptionBudget", [])
    image_env = dockerfile_env()

    # Workloads: the binary each runs and the ports it listens on.
    listening = {}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        binary = binary_of(container["image"])
        if binary is None:
            continue
        check(binary == name, f"{name}: runs the image of {binary}")
        settings_file, listens = BINARIES[binary]
        env = {**image_env, **env_of(container)}
        ports = {}
        for var, role in listens.items():
            settings_text = (ROOT / settings_file).read_text()
            declared = f'env = "{var}"' in settings_text or f'.env("{var}")' in settings_text
            check(declared, f"{binary}: {settings_file} has no {var}")
            check(var in env, f"{name}: {var} is set neither in the Deployment nor in the Dockerfile")
            port = int(env.get(var, ":0").rsplit(":", 1)[1])
            ports[role] = port
            check(str(env.get(var, "")).startswith("0.0.0.0:"), f"{name}: {var}={env.get(var)} does not listen on the pod's address")
        listening[name] = ports
        admin = ports.get("admin", ports.get("http admin"))
        declared = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        check(set(declared.values()) == set(ports.values()), f"{name}: containerPorts {declared} but it listens on {ports}")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = container.get(probe, {}).get("httpGet", {})
            port = declared.get(get.get("port"), get.get("port"))
            check(get.get("path") == path and port == admin, f"{name}: {probe} is {get}, but {path} is served on {admin}")
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        check(annotations.get("prometheus.io/port") == str(admin),
              f"{name}: scraped on {annotations.get('prometheus.io/port')}, but /metrics is on {admin}")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        check(admits(policies, labels, {"namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": "prometheus"}}, admin),
              f"{name}: NetworkPolicies keep Prometheus from /metrics on {admin}")
        check(not admits(policies, labels, OUTSIDER, admin), f"{name}: NetworkPolicies admit any pod of the cluster")
        for service in services.values():
            if selects({"matchLabels": service["spec"].get("selector", {})}, labels) and service["spec"].get("selector"):
                for sp in service["spec"]["ports"]:
                    target = declared.get(sp.get("targetPort"), sp.get("targetPort", sp["port"]))
                    check(target in ports.values(), f"Service {service['metadata']['name']}: port {sp['port']} -> {target}, "
                          f"but {name} listens on {sorted(ports.values())}")
        check(any(selects(p["spec"]["selector"], labels) for p in pdbs), f"{name}: no PDB")
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{name}: may run as root")
        resources = container.get("resources", {})
        check({"cpu", "memory"} <= set(resources.get("requests", {})), f"{name}: no cpu/memory requests")
        check("memory" in resources.get("limits", {}), f"{name}: no memory limit")
        for var in container.get("env", []):
            value = str(var.get("value", ""))
            check(not any(w in var["name"].upper() for w in CREDENTIAL_WORDS) or "valueFrom" in var,
                  f"{name}: {var['name']} holds a credential in plain text")
            check(not ("://" in value and "@" in value.split("://", 1)[1]), f"{name}: {var['name']} has credentials in its URL")
    check(set(listening) == set(BINARIES), f"voteflow Deployments {sorted(listening)} != {sorted(BINARIES)}")

    # Images: by commit from a registry on GKE; the local overlay's :dev images never
    # pulled; public images always pullable.
    for workload in list(deployments.values()) + list(statefulsets.values()) + by_kind.get("Job", []):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            image, policy = container["image"], container.get("imagePullPolicy")
            ours = binary_of(image) is not None
            where = f"{workload['metadata']['name']}/{container['name']}"
            check(image == image.lower() or "@" in image, f"{where}: {image} is not a valid image name (upper case)")
            if overlay == "local":
                check((policy == "Never") == ours, f"{where}: imagePullPolicy {policy} for {image}")
                check(not ours or image.endswith(":dev"), f"{where}: {image}, want the :dev image kind loads")
            else:
                check(policy != "Never", f"{where}: imagePullPolicy Never on a cluster that pulls")
                if ours:
                    check(REGISTRY_IMAGE.match(image) is not None,
                          f"{where}: {image} is not REGION-docker.pkg.dev/PROJECT/REPO/BIN:COMMIT")
            check(":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"{where}: {image} has no fixed tag")
            check(not ours or not image.endswith(":0.1.0"), f"{where}: {image} is tagged by version, not by build")

    # Kafka: brokers, voters, min.insync, and surviving a node drain.
    kafka = statefulsets.get("kafka")
    if kafka:
        pod = kafka["spec"]["template"]["spec"]
        env = env_of(pod["containers"][0])
        brokers = kafka["spec"]["replicas"]
        voters = env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(",")
        check(len(voters) == brokers, f"kafka: {brokers} brokers but {len(voters)} controller voters")
        check(brokers == KAFKA_BROKERS.get(overlay), f"kafka: {brokers} brokers, want {KAFKA_BROKERS.get(overlay)} in {overlay}")
        min_isr = int(env.get("KAFKA_MIN_INSYNC_REPLICAS", 1))
        check(min_isr == max(1, brokers - 1), f"kafka: min.insync.replicas {min_isr} with {brokers} brokers")
        labels = kafka["spec"]["template"]["metadata"]["labels"]
        down = [brokers - p["spec"]["minAvailable"] if "minAvailable" in p["spec"] else p["spec"].get("maxUnavailable")
                for p in pdbs if selects(p["spec"]["selector"], labels)]
        check(brokers == 1 or (down and all(isinstance(d, int) and d <= brokers - min_isr for d in down)),
              f"kafka: a drain may take {down or 'every'} brokers at once; writes stop below {min_isr} in sync")
        anti = (pod.get("affinity", {}).get("podAntiAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", []))
        spread = [c for c in pod.get("topologySpreadConstraints", [])
                  if c["topologyKey"] == "kubernetes.io/hostname" and c["whenUnsatisfiable"] == "DoNotSchedule"]
        one_per_node = any(t["topologyKey"] == "kubernetes.io/hostname" and selects(t["labelSelector"], labels) for t in anti)
        check(one_per_node or (spread and brokers <= 1), "kafka: two brokers may share a node (no required anti-affinity)")
    check(set(statefulsets) == {"kafka", "redis", "mongodb"}, f"StatefulSets {sorted(statefulsets)}")
    for name, statefulset in statefulsets.items():
        claims = statefulset["spec"].get("volumeClaimTemplates", [])
        mounts = [m["name"] for c in statefulset["spec"]["template"]["spec"]["containers"] for m in c.get("volumeMounts", [])]
        check(any(c["metadata"]["name"] in mounts for c in claims), f"{name}: data not on a PersistentVolumeClaim")
        for container in statefulset["spec"]["template"]["spec"]["containers"]:
            check("memory" in container.get("resources", {}).get("limits", {}), f"{name}: no memory limit")
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                check(ref is None or ref["name"] in SECRETS, f"{name}: reads Secret {ref} the README does not create")

    # Topics and partitions, as the topic Job creates them.
    job = next((j for j in by_kind.get("Job", []) if j["metadata"]["name"] == "kafka-topics"), None)
    job_env = env_of(job["spec"]["template"]["spec"]["containers"][0]) if job else {}
    votes_topic, dlq_topic = job_env.get("VOTES_TOPIC"), job_env.get("DLQ_TOPIC")
    partitions = int(job_env.get("VOTES_PARTITIONS", "0"))
    check(job is not None and votes_topic and partitions > 0, "kafka-topics Job: no VOTES_TOPIC / VOTES_PARTITIONS")
    script = " ".join(job["spec"]["template"]["spec"]["containers"][0].get("args", [])) if job else ""
    check("${VOTES_TOPIC}:${VOTES_PARTITIONS}" in script and "${DLQ_TOPIC}" in script,
          "kafka-topics Job: its script does not create the topics its env names")
    for name in ("rest-server", "grpc-server", "consumer"):
        env = env_of(deployments[name]["spec"]["template"]["spec"]["containers"][0]) if name in deployments else {}
        check(env.get("KAFKA_TOPIC") == votes_topic, f"{name}: KAFKA_TOPIC {env.get('KAFKA_TOPIC')}, the Job creates {votes_topic}")
    consumer_env = env_of(deployments["consumer"]["spec"]["template"]["spec"]["containers"][0]) if "consumer" in deployments else {}
    check(consumer_env.get("KAFKA_DLQ_TOPIC") == dlq_topic, f"consumer: KAFKA_DLQ_TOPIC {consumer_env.get('KAFKA_DLQ_TOPIC')}, the Job creates {dlq_topic}")

    # The consumer: drain inside grace and session, and one autoscaler that owns its count.
    consumer = deployments.get("consumer")
    if consumer:
        pod = consumer["spec"]["template"]["spec"]
        deadline = int(consumer_env.get("SHUTDOWN_DEADLINE_SECS", 10))
        session_ms = int(consumer_env.get("KAFKA_SESSION_TIMEOUT_MS", 45000))
        check(pod.get("terminationGracePeriodSeconds", 30) > deadline,
              "consumer: terminationGracePeriodSeconds must exceed SHUTDOWN_DEADLINE_SECS")
        check(deadline * 1000 < session_ms, "consumer: SHUTDOWN_DEADLINE_SECS must be below the session timeout")
    hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", [])]
    scaled = [o for o in by_kind.get("ScaledObject", [])]
    for scaler in hpas + scaled:
        target = scaler["spec"]["scaleTargetRef"]["name"]
        check(target in deployments and "replicas" not in deployments[target]["spec"],
              f"{target}: sets replicas although {scaler['kind']} {scaler['metadata']['name']} owns the count")
    check(len([s for s in hpas + scaled if s["spec"]["scaleTargetRef"]["name"] == "consumer"]) == 1,
          "consumer: needs exactly one autoscaler (a CPU HPA or a KEDA ScaledObject)")
    for hpa in hpas:
        spec = hpa["spec"]
        check(hpa["apiVersion"] == "autoscaling/v2", "HPA: not autoscaling/v2")
        check(spec.get("maxReplicas") == partitions, f"HPA: up to {spec.get('maxReplicas')} replicas, {partitions} partitions")
        check(2 <= spec.get("minReplicas", 1) <= partitions, f"HPA: at least {spec.get('minReplicas')} replicas")
        check(any(m.get("resource", {}).get("name") == "cpu" for m in spec.get("metrics", [])), "HPA: no CPU target")
    for scaler in scaled:
        spec = scaler["spec"]
        check(spec.get("maxReplicaCount") == partitions,
              f"ScaledObject: up to {spec.get('maxReplicaCount')} replicas, {partitions} partitions")
        triggers = [t for t in spec.get("triggers", []) if t["type"] == "kafka"]
        check(triggers, "ScaledObject: no kafka trigger")
        for trigger in triggers:
            meta = trigger["metadata"]
            check(meta.get("consumerGroup") == consumer_env.get("KAFKA_GROUP_ID") and meta.get("topic") == votes_topic,
                  f"ScaledObject: watches {meta.get('consumerGroup')}/{meta.get('topic')}, the consumer is "
                  f"{consumer_env.get('KAFKA_GROUP_ID')}/{votes_topic}")
            # KEDA's operator resolves this name in its own namespace: only a fully
            # qualified Service name of ours reaches Kafka.
            for server in meta.get("bootstrapServers", "").split(","):
                host, _, port = server.partition(":")
                service = host.split(".")[0]
                qualified = host in (f"{service}.{NAMESPACE}.svc.cluster.local", f"{service}.{NAMESPACE}.svc")
                check(qualified and service in services, f"ScaledObject: {server} does not resolve from KEDA's namespace")
                check(admits(policies, {"app.kubernetes.io/name": "kafka"}, KEDA_OPERATOR, int(port or 0)),
                      f"ScaledObject: NetworkPolicies keep KEDA's operator from Kafka at {server}")

    # grpc-client reaches every ready grpc-server pod, not one ClusterIP connection.
    grpc_front = deployments.get("grpc-client")
    if grpc_front:
        url = env_of(grpc_front["spec"]["template"]["spec"]["containers"][0]).get("GRPC_SERVER_URL", "")
        host = url.split("://", 1)[-1].split(":")[0].split(".")[0]
        service = services.get(host, {}).get("spec", {})
        check(service.get("clusterIP") == "None" and not service.get("publishNotReadyAddresses")
              and service.get("selector", {}).get("app.kubernetes.io/name") == "grpc-server",
              f"grpc-client: {url} is not a headless Service of the ready grpc-server pods (one connection, one pod)")

    # NetworkPolicies: default deny; the datastores and the services admit exactly their clients.
    check(any(p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") for p in policies),
          "NetworkPolicy: no default deny of ingress")
    pods = {}
    for workload in list(deployments.values()) + list(statefulsets.values()) + by_kind.get("Job", []):
        pods[workload["metadata"]["name"]] = workload["spec"]["template"]["metadata"]["labels"]
    # The datastores' ports, and each service's serving port (HTTP, or gRPC for grpc-server).
    ports = {"kafka": 9092, "redis": 6379, "mongodb": 27017}
    for service in SERVING_CLIENTS:
        roles = listening.get(service, {})
        ports[service] = roles.get("http admin", roles.get("grpc"))
    for target, allowed in {**ALLOWED_CLIENTS, **SERVING_CLIENTS}.items():
        if target not in pods:
            continue
        port = ports[target]
        admitted = {name for name, labels in pods.items()
                    if admits(policies, pods[target], {"namespace": NAMESPACE, "labels": labels}, port)}
        check(admitted == allowed, f"NetworkPolicy {target}: admits {sorted(admitted)} on {port}, want {sorted(allowed)}")
        check(not admits(policies, pods[target], OUTSIDER, port), f"NetworkPolicy {target}: admits other namespaces on {port}")
        if target in SERVING_CLIENTS and target not in FRONTS:
            check(not admits(policies, pods[target], INGRESS_NGINX, port), f"{target}: ingress-nginx reaches it on {port}")

    # The way in: ingress-nginx's pods or the Gateway's load balancer reach the fronts.
    gateway = bool(by_kind.get("Gateway"))
    for front in FRONTS:
        if front not in pods:
            continue
        port = listening.get(front, {}).get("http admin")
        from_nginx = admits(policies, pods[front], INGRESS_NGINX, port)
        from_gateway = all(admits(policies, pods[front], proxy, port) for proxy in GATEWAY_PROXIES)
        check(from_gateway if gateway else from_nginx,
              f"{front}: NetworkPolicies keep the {'Gateway' if gateway else 'ingress-nginx'} from port {port}")
        check(not (from_gateway and from_nginx), f"{front}: admits both ways in")
        if gateway:
            policy = [h for h in by_kind.get("HealthCheckPolicy", []) if h["spec"]["targetRef"]["name"] == front]
            http = policy[0]["spec"]["default"]["config"]["httpHealthCheck"] if policy else {}
            check(http.get("requestPath") == "/readyz" and http.get("port") == port,
                  f"{front}: the load balancer's health check is {http or 'GET / (the default, a 404)'}, not /readyz on {port}")
    check(gateway or not by_kind.get("HTTPRoute"), "HTTPRoutes without a Gateway")

    # The inspectors' users: each Redis user of the users file gets its password, and the
    # MongoDB reader is made read-only on the database the consumer writes.
    configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    redis_set = statefulsets.get("redis")
    if redis_set:
        pod = redis_set["spec"]["template"]["spec"]
        mounted = {v["name"]: v.get("configMap", {}).get("name") for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: mounted.get(m["name"]) for m in pod["containers"][0].get("volumeMounts", [])}
        users_map = configmaps.get(mounts.get("/etc/redis") or "", {}).get("data", {})
        script = " ".join(pod["containers"][0].get("args", []))
        check("users.acl" in users_map and "/etc/redis/users.acl" in script,
              "redis: does not load its users file (/etc/redis/users.acl from the redis-users ConfigMap)")
        env = {e["name"] for e in pod["containers"][0].get("env", [])}
        for line in users_map.get("users.acl", "").splitlines():
            if line.strip() and not line.startswith("#"):
                user = line.split()[0]
                check(f"{user.upper().replace('-', '_')}_PASSWORD" in env, f"redis: user {user} has no password variable")
    users_job = next((j for j in by_kind.get("Job", []) if j["metadata"]["name"] == "mongodb-users"), None)
    check(users_job is not None, "no mongodb-users Job: Compass would need the root user")
    if users_job:
        pod = users_job["spec"]["template"]["spec"]
        env = env_of(pod["containers"][0])
        consumer_db = consumer_env.get("MONGODB_DATABASE", "voteflow")
        check(env.get("MONGODB_DATABASE") == consumer_db,
              f"mongodb-users: makes its reader for {env.get('MONGODB_DATABASE')}, the consumer writes {consumer_db}")
        scripts = [configmaps.get(v.get("configMap", {}).get("name"), {}).get("data", {}) for v in pod.get("volumes", [])]
        reader = next((s["reader.js"] for s in scripts if "reader.js" in s), "")
        roles = re.findall(r"role:\s*'(\w+)'", reader)
        check(roles == ["read"], f"mongodb-users: the reader gets roles {roles}, want only read")

    check(not by_kind.get("Secret"), "Secrets are in the manifests: credentials must be created in the cluster")

    for message in broken:
        print(f"k8s {overlay}: BROKEN: {message}")
    print(f"k8s {overlay}: {checked - len(broken)} of {checked} promise checks hold")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
