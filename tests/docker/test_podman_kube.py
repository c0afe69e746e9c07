"""The Kubernetes manifests of a real example, running: `podman kube play` (no API server can
be installed here) plays the Deployment `conduit deploy --target kubernetes` writes, with a
Secret holding the API key; the pod pulls the image by the digest the manifest pins, from the
registry `conduit push` sent it to. scripts/podman runs podman as this machine allows
(runc, host network, ulimits it may set); scripts/setup installs it. Skips, with podman's
reason, only where podman cannot start a container at all."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def played(podman_runs: None, engine: Any, examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    """The iris example, renamed for this tree, on a free port (the pod shares the host's
    network), one replica: built, pushed, its manifests rendered, played, and taken down after."""
    project = tmp_path_factory.mktemp("kube") / "iris"
    shutil.copytree(examples / "iris", project, ignore=shutil.ignore_patterns("__pycache__", "deploy"))
    config = yaml.safe_load((project / "conduit.yaml").read_text())
    name = f"{PREFIX}-kube-iris"
    port = free_port()
    config["name"] = name
    config["server"]["port"] = port
    config["image"]["repository"] = f"localhost:5000/{name}"
    config["deploy"]["kubernetes"].update(replicas=1, out="deploy/")
    (project / "conduit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    built = build(project / "conduit.yaml")  # a new image each run (its config holds a free port)
    pushed = conduit("push", "-f", str(project / "conduit.yaml"), timeout=900)
    assert pushed.returncode == 0, pushed.stderr
    written = conduit("deploy", "-f", str(project / "conduit.yaml"), "--target", "kubernetes")
    assert written.returncode == 0, written.stderr
    manifest = project / "deploy" / "deployment.yaml"
    deployment = yaml.safe_load(manifest.read_text())
    [model] = deployment["spec"]["template"]["spec"]["containers"]
    assert "@sha256:" in model["image"]
    secret_ref = model["env"][0]["valueFrom"]["secretKeyRef"]
    # The Secret the manifest names, holding the key. podman 4.3 plays a Secret manifest but then
    # cannot read it back for secretKeyRef ("not valid JSON"); it reads a secret whose content is
    # the Secret's `data` (key → base64) as JSON, so that is what is created.
    secret = project / "secret-data.json"
    secret.write_text(json.dumps({secret_ref["key"]: base64.b64encode(KEY.encode()).decode()}))
    podman("kube", "down", str(manifest), check=False)  # what an interrupted run left
    podman("secret", "rm", secret_ref["name"], check=False)
    try:
        podman("secret", "create", secret_ref["name"], str(secret))
        podman("kube", "play", str(manifest))
        containers = json.loads(podman("ps", "--format", "json", "--filter", f"label=app.kubernetes.io/name={name}").stdout or "[]")
        model_ids = [c["Id"] for c in containers if not c.get("IsInfra")]
        assert len(model_ids) == 1, containers
        [inspected] = json.loads(podman("inspect", model_ids[0]).stdout)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        yield Played(deployment, inspected, url)
    finally:
        podman("kube", "down", str(manifest), check=False)
        podman("secret", "rm", secret_ref["name"], check=False)
        podman("rmi", model["image"], check=False)
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
