"""`conduit deploy --target kubernetes|kserve`: manifests valid for a current
Kubernetes (kubernetes-validate, strict), byte-stable, one-line diffs between
builds, GPU only where asked, the API key only as a Secret reference."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EXAMPLES, conduit
from kubernetes_validate import utils as kubernetes_validate

from conduit_build.config import load
from conduit_build.deploy.kubernetes import GENERATED, deploy_manifests, manifests, write_manifests
from conduit_build.errors import ConfigError, DeployError, UsageError

KUBERNETES = "1.37"  # the newest kubernetes-validate 1.37 knows; pyproject asks for >= 1.37
GOLDEN = Path(__file__).parent / "golden"
WORKFLOW = EXAMPLES / "gitops" / ".github" / "workflows" / "conduit.yaml"
NOT_CORE = {"Kustomization", "InferenceService"}  # kustomize's file and KServe's CRD: no schema in kubernetes-validate


def digest(build: str) -> str:
    """A made-up, well-formed reference, as `conduit push` prints it: no registry needed."""
    return f"localhost:5000/demo@sha256:{hashlib.sha256(build.encode()).hexdigest()}"


IMAGE = digest("build-1")
GPU = {"type": "a10g", "count": 2}


def make_project(root: Path, hardware: Any = "cpu", server: dict[str, Any] | None = None,
                 kubernetes: dict[str, Any] | None = None, **top: Any) -> Path:
    """A small project of our own (the model file only has to exist for load())."""
    root.mkdir(parents=True, exist_ok=True)
    config = {"name": "demo", "hardware": hardware, "models": [{"type": "sklearn", "file": "model.pkl"}],
              "server": server or {}, "deploy": {"kubernetes": {"namespace": "models", "replicas": 2, **(kubernetes or {})}},
              **top}
    (root / "conduit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "model.pkl").write_bytes(b"pickle")
    return root / "conduit.yaml"


def documents(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {name: yaml.safe_load(text) for name, text in files.items()}


def render_files(path: Path, image: str = IMAGE, target: str = "kubernetes") -> dict[str, str]:
    return manifests(load(path), image, target)


def refused(path: Path, words: str) -> str:
    """The problem `load()` (so `conduit validate`) finds in a config, as file:line:col: key: text."""
    with pytest.raises(ConfigError) as raised:
        load(path)
    found = [line for line in raised.value.lines() if re.search(words, line)]
    assert found, raised.value.lines()
    assert raised.value.exit_status == 2
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.fixture(params=["cpu", "gpu"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return make_project(tmp_path / request.param, hardware=GPU if request.param == "gpu" else "cpu")


# -- valid for the schema ------------------------------------------------------------------


def test_every_manifest_is_valid_kubernetes(config: Path) -> None:
    docs = documents(render_files(config))
    assert set(docs) == {"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "kustomization.yaml"}
    for name, doc in docs.items():
        if doc["kind"] in NOT_CORE:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):  # skipped on purpose, checked by hand below
                kubernetes_validate.validate(doc, KUBERNETES, strict=True)
            continue
        assert kubernetes_validate.validate(doc, KUBERNETES, strict=True) == KUBERNETES, name


def test_the_validator_bites(tmp_path: Path) -> None:
    """Strict mode refuses a misspelled field, so the test above means something."""
    deployment = documents(render_files(make_project(tmp_path)))["deployment.yaml"]
    container(deployment)["readinessProbe"]["httpGet"]["pathh"] = "/ready"
    with pytest.raises(kubernetes_validate.ValidationError, match="pathh"):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_kustomization_lists_every_file_and_builds(tmp_path: Path) -> None:
    written = write_manifests(load(make_project(tmp_path / "p")), IMAGE, tmp_path / "out")
    kustomization = yaml.safe_load((tmp_path / "out" / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    on_disk = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert sorted([*kustomization["resources"], "kustomization.yaml"]) == on_disk
    assert [p.name for p in written.files] == [*kustomization["resources"], "kustomization.yaml"]
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is missing: scripts/setup installs it"
    import subprocess

    built = subprocess.run([kubectl, "kustomize", str(tmp_path / "out")], capture_output=True, text=True, timeout=120, check=False)
    assert built.returncode == 0, built.stderr
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(built.stdout))
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]


# -- stable, and one line per build --------------------------------------------------------


def test_stable_across_two_runs(config: Path, tmp_path: Path) -> None:
    """Byte-identical files from two runs, in two folders and again in the same one."""
    project = load(config)
    first = write_manifests(project, IMAGE, tmp_path / "a")
    second = write_manifests(load(config), IMAGE, tmp_path / "b")
    again = write_manifests(load(config), IMAGE, tmp_path / "a")
    for one, two, three in zip(first.files, second.files, again.files, strict=True):
        assert one.read_bytes() == two.read_bytes() == three.read_bytes()
    assert again.removed == ()


def test_a_new_build_changes_only_the_digest_line(config: Path) -> None:
    before, after = render_files(config, digest("build-1")), render_files(config, digest("build-2"))
    assert before.keys() == after.keys()
    changed = [
        line for name in before
        for line in difflib.unified_diff(before[name].splitlines(), after[name].splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == [f"-          image: {digest('build-1')}", f"+          image: {digest('build-2')}"]


def test_nothing_build_dependent_but_the_digest(config: Path) -> None:
    """No timestamps, hashes or versions: the only hex run of 64 is the digest."""
    text = "".join(render_files(config).values())
    assert re.findall(r"[0-9a-f]{12,}", text) == [IMAGE.rpartition(":")[2]]
    assert text.count("@sha256:") == 1


def test_golden_iris_deployment(examples: Path) -> None:
    """The iris CPU Deployment is reviewed in diffs: regenerate on purpose with CONDUIT_REGENERATE=1."""
    deployment = manifests(load(examples / "iris" / "conduit.yaml"), "localhost:5000/iris@sha256:" + "0123456789abcdef" * 4)
    golden = GOLDEN / "iris-deployment.yaml"
    if os.environ.get("CONDUIT_REGENERATE"):
        golden.write_text(deployment["deployment.yaml"])
    assert deployment["deployment.yaml"] == golden.read_text()


# -- GPU only where asked --------------------------------------------------------------------


def test_gpu_config_asks_for_the_gpu(tmp_path: Path) -> None:
    deployment = documents(render_files(make_project(tmp_path, hardware=GPU)))["deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    assert container(deployment)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A10G"]}]}]


def test_cpu_config_asks_for_no_gpu(tmp_path: Path) -> None:
    files = render_files(make_project(tmp_path))
    assert "nvidia" not in "".join(files.values())
    pod = documents(files)["deployment.yaml"]["spec"]["template"]["spec"]
    assert "tolerations" not in pod and "affinity" not in pod


@pytest.mark.parametrize(("hardware", "products"), [
    ("gpu", None),  # any GPU: no node pinning
    ({"type": "A100"}, ["NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-PCIE-40GB", "NVIDIA-A100-80GB-PCIe"]),
    ({"type": "NVIDIA-RTX-A6000"}, ["NVIDIA-RTX-A6000"]),  # a product label, taken as it is
])
def test_gpu_type_pins_the_node_product(tmp_path: Path, hardware: Any, products: list[str] | None) -> None:
    deployment = documents(render_files(make_project(tmp_path, hardware=hardware)))["deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    assert container(deployment)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    if products is None:
        assert "affinity" not in pod
    else:
        expression = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
        assert expression["matchExpressions"][0]["values"] == products
    assert kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_a_gpu_type_that_is_no_label_value_is_refused(tmp_path: Path) -> None:
    line = refused(make_project(tmp_path, hardware={"type": "A10G 24GB"}), r"hardware\.type: 'A10G 24GB' cannot be matched")
    assert line.startswith(f"{tmp_path / 'conduit.yaml'}:3:9: ")


# -- the pod: secret, probes, security -------------------------------------------------------


def test_api_key_comes_from_a_secret_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_project(tmp_path / "p", server={"api_key_env": "IRIS_KEY"})
    monkeypatch.setenv("IRIS_KEY", "s3cret-value-never-written")
    monkeypatch.setenv("CONDUIT_API_KEY", "s3cret-value-never-written")
    result = conduit("deploy", "--target", "kubernetes", "--image", IMAGE, "-f", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    env = container(yaml.safe_load((tmp_path / "out" / "deployment.yaml").read_text()))["env"]
    assert env[0] == {"name": "IRIS_KEY", "valueFrom": {"secretKeyRef": {"name": "demo-api-key", "key": "api-key", "optional": False}}}
    assert all("value" not in item for item in env if item["name"] == "IRIS_KEY")
    everything = "".join(p.read_text() for p in (tmp_path / "out").iterdir()) + result.stdout + result.stderr
    assert "s3cret" not in everything


def test_api_key_secret_name_from_the_config(tmp_path: Path) -> None:
    deployment = documents(render_files(make_project(tmp_path, kubernetes={"api_key_secret": "shared.model-keys"})))["deployment.yaml"]
    assert container(deployment)["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "shared.model-keys"
    refused(make_project(tmp_path / "bad", kubernetes={"api_key_secret": "Model_Keys"}),
            r":\d+:\d+: deploy\.kubernetes\.api_key_secret: 'Model_Keys' is not a Kubernetes Secret name")


def test_pod_is_probed_and_locked_down(tmp_path: Path) -> None:
    path = make_project(tmp_path, server={"port": 9100, "timeout_s": 30},
                        kubernetes={"resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}})
    pod = documents(render_files(path))["deployment.yaml"]["spec"]["template"]["spec"]
    (main,) = pod["containers"]
    assert main["ports"] == [{"name": "http", "containerPort": 9100, "protocol": "TCP"}]
    assert main["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/live", "port": "http"}
    assert main["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}
    assert main["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert main["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert {"name": "HOME", "value": "/tmp"} in main["env"]
    assert pod["terminationGracePeriodSeconds"] == 45  # drain_delay_s 5 + timeout_s 30 + 10
    assert pod["automountServiceAccountToken"] is False


def test_service_targets_the_named_port(tmp_path: Path) -> None:
    service = documents(render_files(make_project(tmp_path)))["service.yaml"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "demo"}


# -- autoscaler and disruption budget follow the replicas --------------------------------------


@pytest.mark.parametrize(("kubernetes", "files", "replicas"), [
    ({"replicas": 1}, ["deployment.yaml", "service.yaml", "hpa.yaml"], None),
    ({"replicas": 1, "max_replicas": 1}, ["deployment.yaml", "service.yaml"], 1),
    ({"replicas": 2, "max_replicas": 2}, ["deployment.yaml", "service.yaml", "pdb.yaml"], 2),
    ({"replicas": 3, "max_replicas": 10, "target_cpu_percent": 55}, ["deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"], None),
])
def test_autoscaler_and_budget_follow_replicas(tmp_path: Path, kubernetes: dict[str, Any], files: list[str],
                                               replicas: int | None) -> None:
    docs = documents(render_files(make_project(tmp_path, kubernetes=kubernetes)))
    assert list(docs) == [*files, "kustomization.yaml"]
    assert docs["kustomization.yaml"]["resources"] == files
    assert docs["deployment.yaml"]["spec"].get("replicas") == replicas  # left to the HPA when there is one
    if "hpa.yaml" in docs:
        spec = docs["hpa.yaml"]["spec"]
        assert spec["minReplicas"] == kubernetes["replicas"]
        assert spec["maxReplicas"] == kubernetes.get("max_replicas", 2 * kubernetes["replicas"])
        assert spec["metrics"][0]["resource"]["target"] == {"type": "Utilization",
                                                            "averageUtilization": kubernetes.get("target_cpu_percent", 70)}
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"}
    if "pdb.yaml" in docs:
        assert docs["pdb.yaml"]["spec"]["maxUnavailable"] == 1
    for doc in docs.values():
        if doc["kind"] not in NOT_CORE:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_files_no_longer_produced_are_removed_but_only_ours(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_manifests(load(make_project(tmp_path / "a", kubernetes={"replicas": 2})), IMAGE, out)
    (out / "notes.yaml").write_text("kind: mine\n")
    written = write_manifests(load(make_project(tmp_path / "b", kubernetes={"replicas": 1, "max_replicas": 1})), IMAGE, out)
    assert sorted(p.name for p in written.removed) == ["hpa.yaml", "pdb.yaml"]
    assert sorted(p.name for p in out.iterdir()) == ["deployment.yaml", "kustomization.yaml", "notes.yaml", "service.yaml"]
    assert all(p.read_text().startswith(GENERATED) for p in written.files)


@pytest.mark.parametrize(("kubernetes", "message"), [
    ({"replicas": 3, "max_replicas": 2}, r"max_replicas \(2\) is below replicas \(3\)"),
    ({"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}, r"requests\.memory \(2Gi\) is above limits\.memory \(1Gi\)"),
    ({"resources": {"requests": {"cpu": "1500m"}, "limits": {"cpu": "1.5"}}}, None),  # equal is fine
    ({"resources": {"requests": {"memory": "1Gi"}}}, r"requests\.cpu is needed"),
])
def test_config_the_cluster_would_refuse_is_refused_here(tmp_path: Path, kubernetes: dict[str, Any], message: str | None) -> None:
    path = make_project(tmp_path, kubernetes=kubernetes)
    if message is None:
        render_files(path)
        return
    refused(path, r"^" + re.escape(str(path)) + r":\d+:\d+: deploy\.kubernetes\.[a-z_.]+: .*" + message)
    validate = conduit("validate", "-f", str(path))
    assert validate.returncode == 2 and re.search(message, validate.stderr) and "Traceback" not in validate.stderr


def test_a_name_no_service_can_have_is_refused(tmp_path: Path) -> None:
    line = refused(make_project(tmp_path, name="3d-model"), "name: '3d-model' cannot name a Kubernetes Service")
    assert line.startswith(f"{tmp_path / 'conduit.yaml'}:1:7: ")


# -- KServe ----------------------------------------------------------------------------------


def test_kserve_inference_service(config: Path) -> None:
    """A CRD: kubernetes-validate has no schema for it, so its shape is checked by hand and
    its pod part against the core PodSpec schema."""
    docs = documents(render_files(config, target="kserve"))
    assert list(docs) == ["inferenceservice.yaml", "kustomization.yaml"]
    assert docs["kustomization.yaml"]["resources"] == ["inferenceservice.yaml"]
    service = docs["inferenceservice.yaml"]
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(service, KUBERNETES, strict=True)
    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    predictor = dict(service["spec"]["predictor"])
    scaling = {key: predictor.pop(key) for key in ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget")}
    assert predictor.pop("protocolVersion") == "v2"  # the Open Inference Protocol
    assert scaling == {"minReplicas": 2, "maxReplicas": 4, "scaleMetric": "cpu", "scaleTarget": 70}
    (main,) = predictor["containers"]
    assert main["name"] == "kserve-container" and main["image"] == IMAGE
    assert main["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "demo-api-key", "key": "api-key", "optional": False}
    assert main["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert main["livenessProbe"]["httpGet"]["path"] == "/live"
    gpu = "gpu" in config.parent.name
    assert ("nvidia.com/gpu" in main["resources"]["limits"]) is gpu
    assert ("tolerations" in predictor) is gpu
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "demo"}, "spec": predictor}
    kubernetes_validate.validate(pod, KUBERNETES, strict=True)


def test_kserve_and_kubernetes_share_a_folder_without_leftovers(tmp_path: Path) -> None:
    project, out = load(make_project(tmp_path / "p")), tmp_path / "out"
    write_manifests(project, IMAGE, out)
    write_manifests(project, IMAGE, out, "kserve")
    assert sorted(p.name for p in out.iterdir()) == ["inferenceservice.yaml", "kustomization.yaml"]


# -- the command ------------------------------------------------------------------------------


def test_command_writes_into_deploy_out_and_prints_the_files(tmp_path: Path) -> None:
    make_project(tmp_path, kubernetes={"out": "manifests/prod"})
    result = conduit("deploy", "--target", "kubernetes", "--image", IMAGE, cwd=tmp_path)  # -f left out: ./conduit.yaml
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [f"wrote manifests/prod/{name}" for name in ("deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml",
                                                                 "kustomization.yaml")] + [f"image: {IMAGE}"]
    result = conduit("deploy", "--target", "kserve", "--image", IMAGE, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload == {"target": "kserve", "image": IMAGE, "out": "manifests/prod",
                       "files": ["manifests/prod/inferenceservice.yaml", "manifests/prod/kustomization.yaml"],
                       "removed": [f"manifests/prod/{name}" for name in ("deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml")],
                       "weights": None, "applied": None}


@pytest.mark.parametrize("image", [
    "localhost:5000/demo:latest",
    "localhost:5000/demo@sha256:" + "a" * 63,
    "localhost:5000/demo@sha256:" + "A" * 64,
    "localhost:5000/demo @sha256:" + "a" * 64,
])
def test_image_must_be_pinned_by_digest(tmp_path: Path, image: str) -> None:
    path = make_project(tmp_path / "p")
    with pytest.raises(UsageError, match="sha256") as raised:
        deploy_manifests(load(path), image, tmp_path / "out")
    assert raised.value.exit_status == 2
    assert not (tmp_path / "out").exists()


def test_apply_without_kubectl_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_project(tmp_path / "p")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(DeployError) as raised:
        deploy_manifests(load(path), IMAGE, tmp_path / "out", apply_them=True)
    assert raised.value.exit_status == 1
    (line,) = raised.value.lines()
    assert "kubectl" in line and "not installed" in line
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_apply_without_a_cluster_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real kubectl, with a kubeconfig that names no cluster."""
    path = make_project(tmp_path / "p")
    (tmp_path / "kubeconfig").write_text("")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    with pytest.raises(DeployError) as raised:
        deploy_manifests(load(path), IMAGE, tmp_path / "out", apply_them=True)
    (line,) = raised.value.lines()
    assert "no" in line and "cluster" in line and "current-context" in line
    assert raised.value.exit_status == 1


# -- through the real CLI ------------------------------------------------------------------------


def test_cli_deploy_kubernetes(tmp_path: Path) -> None:
    path = make_project(tmp_path / "p")
    result = conduit("deploy", "--target", "kubernetes", "--image", IMAGE, "-f", str(path), "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["image"] == IMAGE and len(payload["files"]) == 5
    assert (tmp_path / "p" / "deploy" / "deployment.yaml").read_text().count(f"image: {IMAGE}\n") == 1
    bad = conduit("deploy", "--target", "kubernetes", "--image", "localhost:5000/demo:latest", "-f", str(path))
    assert bad.returncode == 2 and "sha256" in bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "kubeconfig").write_text("")
    env = {"KUBECONFIG": str(tmp_path / "kubeconfig"), "PATH": str(tmp_path / "empty-bin")}
    applied = conduit("deploy", "--target", "kubernetes", "--image", IMAGE, "-f", str(path), "--apply", env=env)
    assert applied.returncode == 1 and len(applied.stderr.strip().splitlines()) == 1, applied.stderr


# -- examples/gitops -------------------------------------------------------------------------


def test_gitops_workflow_runs_the_steps_in_order() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    trigger = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"conduit.yaml", "conduit.lock", "hooks/**"} <= set(trigger["push"]["paths"])
    (job,) = workflow["jobs"].values()
    runs = [step.get("run", "") for step in job["steps"]]
    order = ["conduit validate", "conduit build --locked", "conduit test", "conduit push", "conduit deploy --target kubernetes",
             "git commit"]
    positions = [next(i for i, run in enumerate(runs) if want in run) for want in order]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    uses = [step.get("uses", "") for step in job["steps"]]
    assert uses[0].startswith("actions/checkout@") and any(u.startswith("actions/setup-python@") for u in uses)
    assert workflow["permissions"]["contents"] == "write"  # the bot commits deploy/
