"""The fields of deploy/kubernetes that QuorumLM needs, beyond what the schema checks.

Run by deploy/check-deploy-files.sh after kubernetes-validate: a schema says a manifest is a
valid StatefulSet; this says it is a QuorumLM cluster that can form and stay up.
"""
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
problems = []


def check(ok, what):
    if not ok:
        problems.append(what)


docs = {}
for name in ["namespace.yaml", "services.yaml", "statefulset.yaml", "poddisruptionbudget.yaml"]:
    for doc in yaml.safe_load_all((HERE / name).read_text()):
        docs[(doc["kind"], doc["metadata"]["name"])] = doc

sts = docs[("StatefulSet", "qlm")]
spec = sts["spec"]
pod = spec["template"]["spec"]
container = pod["containers"][0]
env = {e["name"]: e.get("value") for e in container["env"]}
peers = docs[("Service", "qlm-peers")]["spec"]

check(spec["replicas"] == 3, "the StatefulSet runs 3 replicas")
check(spec["podManagementPolicy"] == "Parallel", "pods start in parallel (a cluster forms from a majority)")
check(spec["serviceName"] == "qlm-peers", "the StatefulSet's serviceName is the headless Service")
check(peers.get("clusterIP") == "None", "qlm-peers is headless")
check(peers.get("publishNotReadyAddresses") is True, "qlm-peers publishes pods before they are ready")
check("--id-from-hostname" in container.get("args", []), "qlmd takes its id from the pod name")
check("--join" in container.get("args", []), "pods added by scaling up join the running cluster")

# --initial-cluster names every pod of the StatefulSet, id = ordinal + 1, under the headless
# Service, on the peer port.
members = dict(m.split("=", 1) for m in env["QLM_INITIAL_CLUSTER"].split(","))
expected = {str(i + 1): f"qlm-{i}.qlm-peers:7401" for i in range(spec["replicas"])}
check(members == expected, f"QLM_INITIAL_CLUSTER names each pod: {members} != {expected}")

ports = {p["name"]: p["containerPort"] for p in container["ports"]}
check(ports.get("client") == 7400 and ports.get("peer") == 7401, "client 7400 and peer 7401 ports")
for probe in ["readinessProbe", "livenessProbe"]:
    check(container.get(probe, {}).get("grpc", {}).get("port") == 7400,
          f"{probe} is the gRPC health check on the client port")

sc = pod["securityContext"]
check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 10001, "runs as uid 10001, not root")
check(sc.get("fsGroup") == 10001, "fsGroup 10001 makes the volume writable by the node")
check(container["securityContext"].get("readOnlyRootFilesystem") is True, "read-only root filesystem")

mounts = {m["name"]: m for m in container["volumeMounts"]}
check(mounts["data"]["mountPath"] == env["QLM_DATA_DIR"], "the PVC is the data directory")
claims = [c["metadata"]["name"] for c in spec["volumeClaimTemplates"]]
check(claims == ["data"], "one PersistentVolumeClaim per pod, named data")
volumes = {v["name"]: v for v in pod["volumes"]}
check(volumes["license"].get("configMap", {}).get("name") == "qlm-license", "license from a ConfigMap")
check(volumes["admin-token"].get("secret", {}).get("secretName") == "qlm-admin-token",
      "admin token from a Secret")
check(env["QLM_LICENSE"].startswith(mounts["license"]["mountPath"] + "/"), "QLM_LICENSE in the license mount")
check(env["QLM_VENDOR_PUBKEY"].startswith(mounts["license"]["mountPath"] + "/"), "QLM_VENDOR_PUBKEY in the license mount")
check(env["QLM_ADMIN_TOKEN_FILE"].startswith(mounts["admin-token"]["mountPath"] + "/"), "token in its mount")
check(re.fullmatch(r"\$\(POD_NAME\)\.qlm-peers:7400", env.get("QLM_ADVERTISE_CLIENT") or "") is not None,
      "each node advertises its pod DNS name")

pdb = docs[("PodDisruptionBudget", "qlm")]["spec"]
check(pdb.get("maxUnavailable") == 1, "the PodDisruptionBudget allows 1 unavailable")
labels = spec["template"]["metadata"]["labels"]
for kind, name in [("PodDisruptionBudget", "qlm"), ("Service", "qlm"), ("Service", "qlm-peers")]:
    selector = docs[(kind, name)]["spec"]["selector"]
    selector = selector.get("matchLabels", selector)
    check(all(labels.get(k) == v for k, v in selector.items()), f"{kind} {name} selects the pods")

for p in problems:
    print(f"deploy/kubernetes: {p}", file=sys.stderr)
print(f"deploy/kubernetes: {len(problems)} problem(s) in the QuorumLM fields")
sys.exit(1 if problems else 0)
