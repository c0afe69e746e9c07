"""The Kubernetes manifests of a real example, running: `podman kube play` (no API server can
be installed here) plays the Deployment `conduit deploy --target kubernetes` writes, with a
Secret holding the API key; the pod pulls the image by the digest the manifest pins, from the
registry `conduit push` sent it to. scripts/podman runs podman as this machine allows
(runc, host network, ulimits it may set); scripts/setup installs it. Skips, with podman's
reason, only where podman cannot start a container at all."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import ROOT, build, conduit, free_port

pytestmark = pytest.mark.docker

PODMAN = ROOT / "scripts" / "podman"
PREFIX = re.sub(r"[^a-z0-9-]+", "-", ROOT.name.lower()).strip("-") or "conduit"
KEY = "kube-key-0123456789"


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(PODMAN), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert result.returncode == 0, f"podman {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def podman_runs() -> None:
    checked = subprocess.run([str(PODMAN), "--check"], capture_output=True, text=True, timeout=300, check=False)
    if checked.returncode != 0:
        pytest.skip(checked.stderr.strip().splitlines()[-1] if checked.stderr.strip() else "scripts/podman --check failed")


@dataclass
class Played:
    deployment: dict[str, Any]
    container: dict[str, Any]  # podman inspect of the model's container
    url: str


def wait_ready(url: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url}/ready never answered 200")


def iris_project(examples: Path, folder: Path, name: str, port: int, **image: str) -> Path:
    """The iris example as `name` on `port`, one replica, its image in the test registry (by the
    name podman's registries.conf knows as plain HTTP); `image`: more image.* keys."""
    project = folder / "iris"
    shutil.copytree(examples / "iris", project, ignore=shutil.ignore_patterns("__pycache__", "deploy"))
    config = yaml.safe_load((project / "conduit.yaml").read_text())
    config["name"] = name
    config["server"]["port"] = port
    config["image"].update(repository=f"localhost:5000/{name}", **image)
    config["deploy"]["kubernetes"].update(replicas=1, out="deploy/")
    (project / "conduit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return project / "conduit.yaml"


def pod_logs(name: str) -> str:
    """Every container of the pod (exited ones too, an init container's among them): its state
    and the end of its log."""
    found = json.loads(podman("ps", "-a", "--format", "json", "--filter", f"label=app.kubernetes.io/name={name}",
                              check=False).stdout or "[]")
    lines = []
    for container in found:
        logs = podman("logs", container["Id"], check=False)
        lines.append(f"--- {container.get('Names')} {container.get('State')} exit {container.get('ExitCode')}:\n"
                     f"{(logs.stdout + logs.stderr)[-2000:]}")
    return "\n".join(lines) or "no container of the pod is left"


@contextlib.contextmanager
def playing(manifest: Path, name: str, *options: str,
            adapt: Callable[[dict[str, Any]], None] | None = None) -> Iterator[str]:
    """`podman kube play [OPTIONS]` the Deployment with the Secret it names; the model container's
    id. Taken down after, with the Secret and the image. `adapt`: what podman alone needs, done to
    a copy of the manifest (beside it) that is played instead: never to what `conduit deploy` wrote."""
    deployment = yaml.safe_load(manifest.read_text())
    if adapt is not None:
        adapt(deployment)
        manifest = manifest.with_name(f"podman-{manifest.name}")
        manifest.write_text(yaml.safe_dump(deployment, sort_keys=False))
    [model] = deployment["spec"]["template"]["spec"]["containers"]
    secret_ref = model["env"][0]["valueFrom"]["secretKeyRef"]
    # The Secret the manifest names, holding the key. podman 4.3 plays a Secret manifest but then
    # cannot read it back for secretKeyRef ("not valid JSON"); it reads a secret whose content is
    # the Secret's `data` (key → base64) as JSON, so that is what is created.
    secret = manifest.parent / "secret-data.json"
    secret.write_text(json.dumps({secret_ref["key"]: base64.b64encode(KEY.encode()).decode()}))
    podman("kube", "down", str(manifest), check=False)  # what an interrupted run left
    podman("secret", "rm", secret_ref["name"], check=False)
    try:
        podman("secret", "create", secret_ref["name"], str(secret))
        played = podman("kube", "play", *options, str(manifest), check=False)
        assert played.returncode == 0, f"podman kube play {manifest}:\n{played.stderr[-2000:]}\n{pod_logs(name)}"
        containers = json.loads(podman("ps", "--format", "json", "--filter", f"label=app.kubernetes.io/name={name}").stdout or "[]")
        # podman names a pod's containers <pod>-<container>; an init container may be listed too
        model_ids = [c["Id"] for c in containers
                     if not c.get("IsInfra") and any(n.endswith(f"-{model['name']}") for n in c["Names"])]
        assert len(model_ids) == 1, containers
        yield model_ids[0]
    finally:
        podman("kube", "down", str(manifest), check=False)
        podman("secret", "rm", secret_ref["name"], check=False)
        podman("rmi", model["image"], check=False)


@pytest.fixture(scope="module")
def played(podman_runs: None, engine: Any, examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    """The iris example, renamed for this tree, on a free port (`kube play` publishes the
    containerPort on the host), one replica: built, pushed, its manifests rendered, played, and
    taken down after."""
    name = f"{PREFIX}-kube-iris"
    port = free_port()
    config = iris_project(examples, tmp_path_factory.mktemp("kube"), name, port)
    built = build(config)  # a new image each run (its config holds a free port)
    pushed = conduit("push", "-f", str(config), timeout=900)
    assert pushed.returncode == 0, pushed.stderr
    written = conduit("deploy", "-f", str(config), "--target", "kubernetes")
    assert written.returncode == 0, written.stderr
    manifest = config.parent / "deploy" / "deployment.yaml"
    deployment = yaml.safe_load(manifest.read_text())
    [model] = deployment["spec"]["template"]["spec"]["containers"]
    assert "@sha256:" in model["image"]
    try:
        with playing(manifest, name) as model_id:
            [inspected] = json.loads(podman("inspect", model_id).stdout)
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            yield Played(deployment, inspected, url)
    finally:
        engine.images.remove(built.tag)  # its layers stay, shared with the next run's


def test_pod_runs_with_the_manifests_security_context(played: Played) -> None:
    [model] = played.deployment["spec"]["template"]["spec"]["containers"]
    wanted = model["securityContext"]
    inspected, host = played.container, played.container["HostConfig"]
    assert wanted["runAsUser"] == 10001 and wanted["runAsNonRoot"] is True
    assert inspected["Config"]["User"] == str(wanted["runAsUser"])
    assert inspected["State"]["Running"] is True
    assert host["ReadonlyRootfs"] is wanted["readOnlyRootFilesystem"] is True
    assert wanted["capabilities"]["drop"] == ["ALL"]
    assert not inspected.get("EffectiveCaps"), inspected.get("EffectiveCaps")
    assert wanted["allowPrivilegeEscalation"] is False
    assert any("no-new-privileges" in opt for opt in host.get("SecurityOpt") or []), host.get("SecurityOpt")
    process = subprocess.run([str(PODMAN), "exec", inspected["Id"], "python3", "-c",
                              "import os, pathlib; print(os.getuid()); pathlib.Path('/tmp/w').write_text('x');"
                              "print(os.access('/app', os.W_OK))"], capture_output=True, text=True, check=False)
    assert process.returncode == 0, process.stderr
    assert process.stdout.split() == ["10001", "False"]  # the user asked for; /tmp (emptyDir) writable, /app not


def test_probe_paths_answer_as_the_probes_expect(played: Played) -> None:
    """Each probe's httpGet path on the pod's port answers 2xx now that the pod is ready
    (the kubelet counts 200-399 as success), without the API key."""
    [model] = played.deployment["spec"]["template"]["spec"]["containers"]
    probes = {kind: model[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {p["path"] for p in probes.values()} == {"/health", "/ready", "/live"}  # liveness: /live (restarts a wedged pod)
    ports = {p["name"]: p["containerPort"] for p in model["ports"]}
    for kind, probe in probes.items():
        port = ports[probe["port"]] if isinstance(probe["port"], str) else probe["port"]
        answer = httpx.get(f"http://127.0.0.1:{port}{probe['path']}", timeout=model[kind].get("timeoutSeconds", 1))
        assert 200 <= answer.status_code < 400, (kind, answer.status_code, answer.text)


def test_prediction_through_the_pod_uses_the_secrets_key(played: Played) -> None:
    answer = httpx.post(played.url + "/predict", json=[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],
                        headers={"Authorization": KEY}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == [0, 2]
    refused = httpx.post(played.url + "/predict", json=[[5.1, 3.5, 1.4, 0.2]], headers={"Authorization": "wrong"}, timeout=30)
    assert refused.status_code == 401


def on_the_hosts_network(deployment: dict[str, Any]) -> None:
    """What podman 4.3 needs to play the init-container form here, found by playing it (podman's
    errors quoted), done to the played copy only, with `kube play --network host`:
      - the host's network: `kube play` puts the pod on a bridge of its own
        (podman-default-kube-network, 10.89.0.0/24) and publishes each containerPort on the host,
        which is how the bundled tests above reach the server; but from that bridge the registry
        on the host's 127.0.0.1:5000 is another loopback, and the init container's fetch fails
        with `[Errno 111] Connection refused`. On the host's network it reaches the registry, as
        a kubelet's node would. podman then refuses published ports ("PortMappings can only be
        used with Bridge or slirp4netns networking", with `hostNetwork: true` as well), so the
        copy has no `ports`, and its probes name the port by number, not by the name `http`;
      - `restartPolicy: OnFailure`: podman 4.3 gives an init container the pod's restart policy,
        and with a Deployment's `Always` it restarts the init container each time it exits 0 (57
        restarts in 6 s, playing a probe pod). With the default init type, `once`, `kube play`
        then fails with "failed to remove once init container <id>: cannot remove container <id>
        as it is running - running or paused containers cannot be removed without force:
        container state improper"; with `always`, the pod starts and the init container fetches
        again and again into the volume the server reads (25 fetches in a minute). A kubelet
        runs an init container until it succeeds, once; so does podman with `OnFailure`;
      - init container type `always` (podman's annotation, read from the Deployment's own
        metadata): podman keeps the exited init container instead of removing it, so the test
        reads its log."""
    deployment["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    deployment["metadata"].setdefault("annotations", {})["io.podman.annotations.init.container.type"] = "always"
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        numbers = {port["name"]: port["containerPort"] for port in container.pop("ports", [])}
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(kind, {}).get("httpGet")
            if probe and isinstance(probe["port"], str):
                probe["port"] = numbers[probe["port"]]


def test_separate_weights_come_from_the_init_container(podman_runs: None, engine: Any, examples: Path,
                                                      tmp_path: Path) -> None:
    """Issue 21: iris with image.weights: separate (model.pkl is the weights), built, pushed (the
    image and the weights artifact), its manifests pinned to the pushed weights (`conduit deploy`
    without --weights) and played: the init container (the server image itself) pulls the
    weights by digest from the registry into the `weights` emptyDir, the server checks them
    there (CONDUIT_WEIGHTS_DIR, read-only) and answers a prediction through the pod."""
    name = f"{PREFIX}-kube-iris-sep"
    port = free_port()
    config = iris_project(examples, tmp_path, name, port, weights="separate")
    env = {"CONDUIT_CACHE_DIR": str(tmp_path / "cache")}
    built = build(config, env=env)
    try:
        pushed = conduit("push", "-f", str(config), "--json", env=env, timeout=900)
        assert pushed.returncode == 0, pushed.stderr
        pin = json.loads(pushed.stdout)["weights"]["pinned"]
        assert pin.startswith(f"localhost:5000/{name}-weights@sha256:")
        written = conduit("deploy", "-f", str(config), "--target", "kubernetes", env=env)
        assert written.returncode == 0, written.stderr
        manifest = config.parent / "deploy" / "deployment.yaml"
        spec = yaml.safe_load(manifest.read_text())["spec"]["template"]["spec"]
        [init], [model] = spec["initContainers"], spec["containers"]
        assert init["image"] == model["image"] and "@sha256:" in model["image"]
        assert init["command"] == ["python3", "-m", "conduit_runtime.weights", "fetch", "--into", "/weights"]
        assert {e["name"]: e.get("value") for e in init["env"]}["CONDUIT_WEIGHTS"] == pin  # the pushed pin
        assert {e["name"]: e.get("value") for e in model["env"]}["CONDUIT_WEIGHTS_DIR"] == "/weights"
        assert {v["name"]: v for v in spec["volumes"]}["weights"] == {"name": "weights", "emptyDir": {}}

        with playing(manifest, name, "--network", "host", adapt=on_the_hosts_network) as model_id:
            url = f"http://127.0.0.1:{port}"
            try:
                wait_ready(url)
            except AssertionError:
                everything = podman("ps", "-a", "--format", "json", "--filter", f"label=app.kubernetes.io/name={name}").stdout
                raise AssertionError(f"{url}/ready never answered 200; containers: {everything}\n"
                                     f"model's log: {podman('logs', model_id, check=False).stderr[-3000:]}") from None
            answer = httpx.post(url + "/predict", json=[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],
                                headers={"Authorization": KEY}, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["result"] == [0, 2]
            # The init container's one line: pulled from the registry, the pushed pin.
            [init_id] = [c["Id"] for c in json.loads(podman("ps", "-a", "--format", "json", "--filter",
                                                            f"label=app.kubernetes.io/name={name}").stdout)
                         if any(n.endswith(f"-{init['name']}") for n in c["Names"])]
            init_logs = podman("logs", init_id)
            pulled = [json.loads(line) for line in (init_logs.stdout + init_logs.stderr).splitlines()
                      if '"weights_fetched"' in line]
            assert [(line["source"], line["artifact"]) for line in pulled] == [("registry", pin)], init_logs
            assert pulled[0]["bytes"] == (examples / "iris" / "model.pkl").stat().st_size
            logs = podman("logs", model_id)
            fetched = [json.loads(line) for line in (logs.stdout + logs.stderr).splitlines() if '"weights_fetched"' in line]
            assert [(line["source"], line["artifact"]) for line in fetched] == [("dir", "/weights")], logs.stderr[-3000:]
            # The image holds a link where model.pkl was; the tree the init container fetched is
            # in the emptyDir, mounted read-only in the model's container.
            looked = podman("exec", model_id, "python3", "-c",
                            "import os, json; print(json.dumps([os.readlink('/app/model.pkl'), "
                            "os.path.getsize('/weights/models/model.pkl'), os.access('/weights', os.W_OK)]))")
            link, size, writable = json.loads(looked.stdout)
            assert link == "/tmp/conduit-weights-active/models/model.pkl"
            assert size == (examples / "iris" / "model.pkl").stat().st_size and writable is False
    finally:
        engine.images.remove(built.tag, force=True)
