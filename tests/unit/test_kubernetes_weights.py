"""`conduit deploy --target kubernetes|kserve --weights PIN` (issue 21): weights separate from the
image, fetched by the server image in an init container (default) or mounted as an image volume
(deploy.kubernetes.image_volume); valid for kubernetes-validate, a retrain a pin-only diff, no
credentials anywhere, and bundled weights (no pin) byte-identical to before."""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import conduit
from kubernetes_validate import utils as kubernetes_validate
from test_kubernetes import GPU, IMAGE, KUBERNETES, container, documents, make_project, refused

from conduit_build.config import load
from conduit_build.config.schema import Config
from conduit_build.deploy.kubernetes import deploy_manifests, manifests, write_manifests
from conduit_build.errors import UsageError

# Image volumes (`volumes[].image`) are in the schema from 1.31 (alpha); the feature is beta from
# 1.33, which is what deploy.kubernetes.image_volume asks for. kubernetes-validate bundles 1.25-1.37.
IMAGE_VOLUME_VERSIONS = ("1.33", "1.37")
BEFORE_IMAGE_VOLUMES = "1.30"
FETCH = ["python3", "-m", "conduit_runtime.weights", "fetch", "--into", "/weights"]
SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
FORMS = ("init", "image_volume")


def weights_pin(training: str) -> str:
    """A made-up weights artifact reference, as `conduit push` prints it."""
    return f"localhost:5000/demo-weights@sha256:{hashlib.sha256(training.encode()).hexdigest()}"


WEIGHTS = weights_pin("train-1")


def project(root: Path, form: str = "init", hardware: Any = "cpu", **kubernetes: Any) -> Path:
    return make_project(root, hardware=hardware, kubernetes={"image_volume": form == "image_volume", **kubernetes},
                        image={"weights": "separate"})


def render(path: Path, weights: str | None = WEIGHTS, target: str = "kubernetes") -> dict[str, str]:
    return manifests(load(path), IMAGE, target, weights)


def pod_of(docs: dict[str, dict[str, Any]], target: str) -> dict[str, Any]:
    if target == "kserve":
        return dict(docs["inferenceservice.yaml"]["spec"]["predictor"])
    return dict(docs["deployment.yaml"]["spec"]["template"]["spec"])


def as_pod(predictor: dict[str, Any]) -> dict[str, Any]:
    """The InferenceService's predictor, less KServe's own keys: a core PodSpec."""
    spec = {key: value for key, value in predictor.items()
            if key not in ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "protocolVersion")}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "demo"}, "spec": spec}


def changed_lines(before: dict[str, str], after: dict[str, str]) -> list[str]:
    assert before.keys() == after.keys()
    return [line for name in before
            for line in difflib.unified_diff(before[name].splitlines(), after[name].splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


# -- bundled: nothing changes ------------------------------------------------------------------


@pytest.mark.parametrize("target", ["kubernetes", "kserve"])
@pytest.mark.parametrize("form", FORMS)
def test_bundled_weights_render_as_before(tmp_path: Path, form: str, target: str) -> None:
    """No pin: byte-identical to a project without the new keys (the golden file holds those)."""
    plain = manifests(load(make_project(tmp_path / "plain")), IMAGE, target)
    assert render(project(tmp_path / "p", form), None, target) == plain
    text = "".join(plain.values())
    assert "weights" not in text and "initContainers" not in text and "CONDUIT_REGISTRY" not in text


# -- the init container ------------------------------------------------------------------------


@pytest.mark.parametrize("hardware", ["cpu", "gpu"])
def test_init_container_fetches_into_an_empty_dir(tmp_path: Path, hardware: str) -> None:
    files = render(project(tmp_path, hardware=GPU if hardware == "gpu" else "cpu"))
    deployment = documents(files)["deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    (init,) = pod["initContainers"]
    assert init["name"] == "weights" and init["image"] == IMAGE == main["image"]  # the same server image, by digest
    assert init["command"] == FETCH
    assert init["env"][0] == {"name": "CONDUIT_WEIGHTS", "value": WEIGHTS}
    assert init["securityContext"] == main["securityContext"] == SECURITY
    assert init["volumeMounts"] == [{"name": "weights", "mountPath": "/weights"}, {"name": "tmp", "mountPath": "/tmp"}]
    assert init["resources"]["requests"] == main["resources"]["requests"]
    assert "nvidia.com/gpu" not in init["resources"]["limits"]  # fetching needs no GPU
    assert ("nvidia.com/gpu" in main["resources"]["limits"]) is (hardware == "gpu")
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}, {"name": "weights", "emptyDir": {}}]
    assert {"name": "weights", "mountPath": "/weights", "readOnly": True} in main["volumeMounts"]
    assert {"name": "CONDUIT_WEIGHTS_DIR", "value": "/weights"} in main["env"]
    assert all(item["name"] != "CONDUIT_WEIGHTS" for item in main["env"])  # the folder, never a second pull
    text = files["deployment.yaml"]
    assert text.count(WEIGHTS) == 1 and f"\n              value: {WEIGHTS}\n" in text  # on its own line
    assert "# weights artifact: localhost:5000/demo-weights " in text  # the comment names the artifact
    assert kubernetes_validate.validate(deployment, KUBERNETES, strict=True) == KUBERNETES


def test_registry_credentials_come_from_an_optional_secret(tmp_path: Path) -> None:
    init = documents(render(project(tmp_path)))["deployment.yaml"]["spec"]["template"]["spec"]["initContainers"][0]
    assert init["env"][1:] == [
        {"name": "CONDUIT_REGISTRY_USERNAME",
         "valueFrom": {"secretKeyRef": {"name": "demo-registry", "key": "username", "optional": True}}},
        {"name": "CONDUIT_REGISTRY_PASSWORD",
         "valueFrom": {"secretKeyRef": {"name": "demo-registry", "key": "password", "optional": True}}},
    ]
    named = documents(render(project(tmp_path / "named", registry_secret="ghcr.pull")))["deployment.yaml"]
    assert {item["valueFrom"]["secretKeyRef"]["name"] for item in named["spec"]["template"]["spec"]["initContainers"][0]["env"][1:]} \
        == {"ghcr.pull"}
    refused(project(tmp_path / "bad", registry_secret="Pull_Secret"),
            r":\d+:\d+: deploy\.kubernetes\.registry_secret: 'Pull_Secret' is not a Kubernetes Secret name")


def test_the_validator_bites_in_the_init_container(tmp_path: Path) -> None:
    deployment = documents(render(project(tmp_path)))["deployment.yaml"]
    deployment["spec"]["template"]["spec"]["initContainers"][0]["volumeMounts"][0]["readonly"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readonly"):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


# -- the image volume ------------------------------------------------------------------------


def test_image_volume_mounts_the_artifact(tmp_path: Path) -> None:
    files = render(project(tmp_path, "image_volume"))
    deployment = documents(files)["deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    assert "initContainers" not in pod
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}},
                              {"name": "weights", "image": {"reference": WEIGHTS, "pullPolicy": "IfNotPresent"}}]
    assert {"name": "weights", "mountPath": "/weights", "readOnly": True} in main["volumeMounts"]
    assert {"name": "CONDUIT_WEIGHTS_DIR", "value": "/weights"} in main["env"]
    text = files["deployment.yaml"]
    assert text.count(WEIGHTS) == 1 and f"\n            reference: {WEIGHTS}\n" in text
    assert "# weights artifact: localhost:5000/demo-weights " in text and "Kubernetes >= 1.33" in text
    assert "CONDUIT_REGISTRY" not in text  # the kubelet pulls it, with the pod's image pull credentials
    for version in IMAGE_VOLUME_VERSIONS:
        assert kubernetes_validate.validate(deployment, version, strict=True) == version
    with pytest.raises(kubernetes_validate.ValidationError, match="image"):  # the validator knows the field is new
        kubernetes_validate.validate(deployment, BEFORE_IMAGE_VOLUMES, strict=True)


# -- KServe ------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_kserve_predictor_gets_the_same_weights(tmp_path: Path, form: str) -> None:
    predictor = pod_of(documents(render(project(tmp_path, form), target="kserve")), "kserve")
    (main,) = predictor["containers"]
    assert {"name": "CONDUIT_WEIGHTS_DIR", "value": "/weights"} in main["env"]
    assert {"name": "weights", "mountPath": "/weights", "readOnly": True} in main["volumeMounts"]
    deployment = pod_of(documents(render(project(tmp_path / "k8s", form))), "kubernetes")
    assert predictor["volumes"] == deployment["volumes"]
    assert predictor.get("initContainers") == deployment.get("initContainers")
    if form == "init":
        assert predictor["initContainers"][0]["command"] == FETCH
    versions = IMAGE_VOLUME_VERSIONS if form == "image_volume" else (KUBERNETES,)
    for version in versions:
        kubernetes_validate.validate(as_pod(predictor), version, strict=True)


# -- a retrain is the pin and nothing else -----------------------------------------------------


@pytest.mark.parametrize("target", ["kubernetes", "kserve"])
@pytest.mark.parametrize("form", FORMS)
def test_a_retrain_changes_only_the_pin_lines(tmp_path: Path, form: str, target: str) -> None:
    """Written twice with two pins into two folders, the files differ in the pin's line only."""
    loaded = load(project(tmp_path / "p", form))
    first = write_manifests(loaded, IMAGE, tmp_path / "train-1", target, weights_pin("train-1"))
    second = write_manifests(loaded, IMAGE, tmp_path / "train-2", target, weights_pin("train-2"))
    before = {p.name: p.read_text() for p in first.files}
    after = {p.name: p.read_text() for p in second.files}
    changed = changed_lines(before, after)
    assert len(changed) == 2, changed
    removed, added = changed
    assert removed.startswith("-") and added.startswith("+")
    assert removed[1:].replace(weights_pin("train-1"), weights_pin("train-2")) == added[1:]
    key = "reference:" if form == "image_volume" else "value:"
    assert removed[1:].strip() == f"{key} {weights_pin('train-1')}"


def test_a_new_server_build_changes_only_the_image_lines(tmp_path: Path) -> None:
    """The init container runs the server image: a new build moves both its lines, the pin stays."""
    loaded = load(project(tmp_path))
    other = IMAGE.replace(IMAGE[-64:], hashlib.sha256(b"build-2").hexdigest())
    changed = changed_lines(manifests(loaded, IMAGE, weights=WEIGHTS), manifests(loaded, other, weights=WEIGHTS))
    assert sorted(changed) == sorted([f"-          image: {IMAGE}"] * 2 + [f"+          image: {other}"] * 2)


def test_a_tag_on_the_pin_stays_out_of_the_comment(tmp_path: Path) -> None:
    tagged = "localhost:5000/demo-weights:0a1b2c3d4e5f@sha256:" + "0123456789abcdef" * 4
    text = render(project(tmp_path), tagged)["deployment.yaml"]
    assert "# weights artifact: localhost:5000/demo-weights (" in text and text.count("0a1b2c3d4e5f") == 1


# -- the pin is checked ------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [
    "localhost:5000/demo-weights:latest",
    "localhost:5000/demo-weights@sha256:" + "a" * 63,
    "localhost:5000/demo-weights@sha256:" + "A" * 64,
    "demo-weights@sha256:" + "a" * 64,  # no registry: the runtime could not pull it
    "localhost:5000/demo-weights@sha256:" + "a" * 64 + "\n# injected: true",
    "localhost:5000/demo-weights@sha256:" + "a" * 64 + "\n",  # a blank line after the pin: no longer one line
])
def test_weights_must_be_pinned_by_digest(tmp_path: Path, weights: str) -> None:
    with pytest.raises(UsageError, match="--weights") as raised:
        deploy_manifests(load(project(tmp_path / "p")), IMAGE, tmp_path / "out", weights=weights)
    assert raised.value.exit_status == 2 and len(raised.value.lines()) <= 2
    assert not (tmp_path / "out").exists()


def test_weights_of_a_bundled_image_are_refused(tmp_path: Path) -> None:
    """--weights names an artifact the image would never read: one line, exit 2."""
    with pytest.raises(UsageError, match=r"image\.weights: separate") as raised:
        deploy_manifests(load(make_project(tmp_path / "p")), IMAGE, tmp_path / "out", weights=WEIGHTS)
    assert raised.value.exit_status == 2
    assert not (tmp_path / "out").exists()


def test_schema_documents_image_volume() -> None:
    kube = Config.model_json_schema()["$defs"]["KubernetesDeploy"]["properties"]
    assert kube["image_volume"]["default"] is False and "1.33" in kube["image_volume"]["description"]
    assert "username" in kube["registry_secret"]["description"]


# -- through the real CLI, and no credentials anywhere -----------------------------------------


def test_cli_weights_flag(tmp_path: Path) -> None:
    path = project(tmp_path / "p")
    secrets = {"CONDUIT_REGISTRY_USERNAME": "robot-user-never-written", "CONDUIT_REGISTRY_PASSWORD": "s3cret-never-written",
               "CONDUIT_API_KEY": "s3cret-key-never-written"}
    out = tmp_path / "out"
    result = conduit("deploy", "--target", "kubernetes", "--image", IMAGE, "--weights", WEIGHTS, "-f", str(path),
                     "--out", str(out), env=secrets)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [f"image: {IMAGE}", f"weights: {WEIGHTS}"]
    deployment = yaml.safe_load((out / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["initContainers"][0]["env"][0]["value"] == WEIGHTS
    kserve = conduit("deploy", "--target", "kserve", "--image", IMAGE, "--weights", WEIGHTS, "-f", str(path),
                     "--out", str(out), "--json", env=secrets)
    assert kserve.returncode == 0, kserve.stderr
    assert json.loads(kserve.stdout)["weights"] == WEIGHTS
    everything = "".join(p.read_text() for p in out.iterdir()) + result.stdout + result.stderr + kserve.stdout + kserve.stderr
    assert "never-written" not in everything
    for doc in yaml.safe_load_all((out / "inferenceservice.yaml").read_text()):
        for item in doc["spec"]["predictor"]["initContainers"][0]["env"]:
            assert item["name"] == "CONDUIT_WEIGHTS" or "value" not in item  # credentials only as Secret references

    bad = conduit("deploy", "--target", "kubernetes", "--image", IMAGE, "--weights", "localhost:5000/demo-weights:latest",
                  "-f", str(path), "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and bad.stdout == ""
    (line,) = bad.stderr.splitlines()
    assert line.startswith("error: argument --weights: 'localhost:5000/demo-weights:latest' is not a ")
    assert line.endswith("(usage: conduit deploy --help)")
    assert not (tmp_path / "bad").exists()
    usage = conduit("deploy", "--help")
    assert "--weights REFERENCE" in usage.stdout and "image_volume" in usage.stdout
