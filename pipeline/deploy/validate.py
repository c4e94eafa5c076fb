"""Checks pace's deployment files offline, and renders the pipeline
cluster the Kubernetes manifests describe.

    python validate.py k8s DIR              every manifest in DIR against the
                                            Kubernetes schemas (strict: an
                                            unknown field is an error)
    python validate.py compose FILE SCHEMA  a compose file against the
                                            Compose specification's schema,
                                            and what refers to what in it
    python validate.py dockerfile FILE      the image's rules (pinned bases,
                                            a non-root user, a health check)
    python validate.py render DIR           the pipeline StatefulSet's pods as
                                            JSON: each pod's process index,
                                            arguments and environment, and
                                            the hosts file, the way the pods
                                            will see them; an error if the
                                            replicas, PACE_PROCESSES, the
                                            hosts file and the headless
                                            service disagree

Each prints what it found wrong, one line a fault, and exits 1 if
anything was; `pipeline/tests/deploy.rs` runs them in `make test`. The
Kubernetes schemas come with kubernetes-validate (PyPI), the Compose
schema with compose-go (the Go module proxy): `make tools` installs both,
so nothing is fetched at test time.
"""

import json
import pathlib
import re
import sys

import jsonschema
import yaml

# The Kubernetes release the manifests are checked against: the oldest
# that gives StatefulSet pods the apps.kubernetes.io/pod-index label
# (1.28) is older than any supported one; this is a current release.
KUBERNETES = "1.33.0"


def manifests(directory):
    """(file name, document) of every YAML document under `directory`."""
    for path in sorted(pathlib.Path(directory).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path.name, doc


def check_k8s(directory):
    import kubernetes_validate

    faults, count = [], 0
    for name, doc in manifests(directory):
        count += 1
        what = f"{name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            faults.append(f"{what}: {path}: {e.message}")
        except Exception as e:  # an unknown kind or apiVersion
            faults.append(f"{what}: {e}")
    if count == 0:
        faults.append(f"{directory}: no manifests")
    return faults, f"{count} manifests against Kubernetes {KUBERNETES}"


def check_compose(file, schema_file):
    compose = yaml.safe_load(pathlib.Path(file).read_text())
    schema = json.loads(pathlib.Path(schema_file).read_text())
    # The schema says its draft (2020-12 today: `unevaluatedProperties`
    # is what refuses an unknown key).
    validator = jsonschema.validators.validator_for(schema)(schema)
    faults = [
        f"{file}: {'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
        for e in sorted(validator.iter_errors(compose), key=lambda e: list(map(str, e.path)))
    ]
    if faults:
        return faults, "compose"
    # What the schema cannot see: names that refer to other parts.
    services = compose.get("services", {})
    volumes = compose.get("volumes") or {}
    configs = compose.get("configs") or {}
    base = pathlib.Path(file).parent
    for name, service in services.items():
        if "image" not in service and "build" not in service:
            faults.append(f"{file}: service {name}: neither image nor build")
        depends = service.get("depends_on", [])
        for other in depends if isinstance(depends, list) else depends.keys():
            if other not in services:
                faults.append(f"{file}: service {name} depends on {other}, not a service")
        for v in service.get("volumes", []):
            source = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if source.startswith((".", "/")):
                if not (base / source).exists():
                    faults.append(f"{file}: service {name} mounts {source}, which is not there")
            elif source and source not in volumes:
                faults.append(f"{file}: service {name} mounts volume {source}, not declared")
        for c in service.get("configs", []):
            source = c if isinstance(c, str) else c.get("source")
            if source not in configs:
                faults.append(f"{file}: service {name} takes config {source}, not declared")
    return faults, f"{len(services)} services against the Compose specification"


def check_dockerfile(file):
    lines, faults = [], []
    text = pathlib.Path(file).read_text()
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    stages = [i for i, l in enumerate(lines) if l.upper().startswith("FROM ")]
    if not stages:
        return [f"{file}: no FROM"], "dockerfile"
    for i in stages:
        image = lines[i].split()[1]
        if ":" not in image or image.endswith(":latest"):
            faults.append(f"{file}: {lines[i]!r}: the base is not pinned to a version")
    final = lines[stages[-1]:]
    instruction = lambda word: [l for l in final if l.upper().startswith(word + " ")]
    users = instruction("USER")
    if not users or users[-1].split()[1].split(":")[0] in ("root", "0"):
        faults.append(f"{file}: the image runs as root (no USER in its last stage)")
    if not instruction("HEALTHCHECK"):
        faults.append(f"{file}: no HEALTHCHECK")
    if not any("pace" in l for l in instruction("ENTRYPOINT")):
        faults.append(f"{file}: the ENTRYPOINT is not pace")
    return faults, f"{len(stages)} stages"


def render(directory):
    """The pipeline pods as they will start, and any disagreement."""
    docs = [doc for _, doc in manifests(directory)]
    by = lambda kind, name: next(
        (d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name), None
    )
    sets = [d for d in docs if d.get("kind") == "StatefulSet"]
    if len(sets) != 1:
        return [f"{directory}: {len(sets)} StatefulSets, not one"], None
    sts = sets[0]
    name, spec = sts["metadata"]["name"], sts["spec"]
    replicas, service = spec.get("replicas", 1), spec["serviceName"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    faults = []
    headless = by("Service", service)
    if headless is None:
        faults.append(f"no Service {service} (the StatefulSet's serviceName)")
    else:
        if headless["spec"].get("clusterIP") != "None":
            faults.append(f"Service {service} is not headless (clusterIP: None)")
        if not headless["spec"].get("publishNotReadyAddresses"):
            faults.append(
                f"Service {service} does not publish pods before they are ready: "
                "no process could reach another to become ready"
            )
    if spec.get("podManagementPolicy") != "Parallel":
        faults.append("podManagementPolicy is not Parallel: pod 0 would wait for the others forever")
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    if "timely" not in ports:
        faults.append("the container has no port named timely")
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    files = {}
    for volume in pod.get("volumes", []):
        if "configMap" in volume and volume["name"] in mounts:
            config = by("ConfigMap", volume["configMap"]["name"])
            if config is None:
                faults.append(f"volume {volume['name']}: no ConfigMap {volume['configMap']['name']}")
                continue
            for key, value in config.get("data", {}).items():
                files[f"{mounts[volume['name']]}/{key}"] = value

    def value(env, ordinal):
        if "value" in env:
            return env["value"]
        source = env.get("valueFrom", {})
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if path == "metadata.labels['apps.kubernetes.io/pod-index']":
                return str(ordinal)
            if path == "metadata.name":
                return f"{name}-{ordinal}"
            return None
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            config = by("ConfigMap", ref["name"])
            if config is None:
                faults.append(f"env {env['name']}: no ConfigMap {ref['name']}")
                return None
            return config.get("data", {}).get(ref["key"])
        return None

    pods = []
    for ordinal in range(replicas):
        env = {e["name"]: value(e, ordinal) for e in container.get("env", [])}
        pods.append({"process": ordinal, "args": container.get("args", []), "env": env})
    env = pods[0]["env"]
    if env.get("PACE_PROCESSES") != str(replicas):
        faults.append(f"PACE_PROCESSES is {env.get('PACE_PROCESSES')}, replicas {replicas}")
    for p in pods:
        if p["env"].get("PACE_PROCESS") != str(p["process"]):
            faults.append(f"pod {p['process']} would be process {p['env'].get('PACE_PROCESS')}")
    hosts_file = env.get("PACE_HOSTS")
    hosts = files.get(hosts_file)
    if hosts is None:
        faults.append(f"PACE_HOSTS {hosts_file} is no file a ConfigMap mounts")
        hosts = ""
    lines = [l.strip() for l in hosts.splitlines() if l.strip() and not l.startswith("#")]
    if len(lines) < replicas:
        faults.append(f"the hosts file names {len(lines)} processes, replicas is {replicas}")
    for i, line in enumerate(lines[:replicas]):
        want = f"{name}-{i}.{service}:{ports.get('timely')}"
        if line != want:
            faults.append(f"hosts line {i} is {line}; pod {i} is {want}")
    return faults, {"replicas": replicas, "hosts": lines[:replicas], "pods": pods}


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[1], argv[2:]
    try:
        return run(command, args)
    except yaml.YAMLError as e:
        print(f"not YAML: {e}", file=sys.stderr)
        return 1


def run(command, args):
    if command == "render":
        faults, cluster = render(*args)
        if not faults:
            print(json.dumps(cluster))
        what = "render"
    else:
        check = {"k8s": check_k8s, "compose": check_compose, "dockerfile": check_dockerfile}
        faults, what = check[command](*args)
    for f in faults:
        print(f, file=sys.stderr)
    if faults:
        return 1
    if command != "render":
        print(f"ok: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
