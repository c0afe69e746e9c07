"""The pydantic models of conduit.yaml (DESIGN §1): the shape and the values.

Whether the files it names exist, and what they contain, is checked by
`config.py` after this validation, with the positions of the YAML.
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

ModelType = Literal[
    "sklearn",
    "sklearn_classifier",
    "sklearn_preprocessor",
    "xgboost_classifier",
    "xgboost_regressor",
    "onnx",
    "torch",
    "spacy",
    "hf_pipeline",
    "python",
]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)
# Types whose `file` is a folder rather than one file.
DIRECTORY_TYPES = ("spacy", "hf_pipeline")

REF = re.compile(r"^[^:]+\.py:[A-Za-z_][A-Za-z0-9_]*$")
# A Docker repository without tag or digest: [registry[:port]/]path, the path in lowercase.
PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = rf"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?{PATH_COMPONENT}(?:/{PATH_COMPONENT})*$"
SECRET_NAME = re.compile(r"(^|_)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)


def check_code_ref(value: str) -> str:
    if not REF.match(value):
        raise ValueError(f"{value!r} is not module_file:function; write it like hooks.py:pre_process")
    return value


def check_python_version(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError('quote the version, like python: "3.11" (unquoted, YAML reads 3.10 as the number 3.1)')
    if not isinstance(value, str) or not re.fullmatch(r"3\.\d{1,2}", value):
        raise ValueError(f"{value!r} is not a Python version; write it like \"3.11\"")
    return value


def check_workers(value: Any) -> Any:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError(f"{value!r} is not a number of workers; give a whole number from 1, or auto (one per CPU)")


HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*")


def check_webhook_host(value: str) -> str:
    import ipaddress

    with contextlib.suppress(ValueError):
        ipaddress.ip_network(value, strict=False)
        return value
    if "/" in value or ":" in value or value.replace(".", "").isdigit() or not HOST_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is neither a host name (like hooks.internal) nor a CIDR range or address "
                         "(like 10.0.0.0/8, fd00::/8, 127.0.0.1)")
    return value


def parse_hardware(value: Any) -> Any:
    if value in ("cpu", "gpu"):
        return {"kind": value}
    if isinstance(value, dict):
        if "kind" in value:  # internal, not a key of the file: {kind: cpu, ...} must not pass unseen
            raise ValueError("unknown key 'kind': a mapping here is a GPU, like {type: a10g, count: 1}; for none write cpu")
        return {"kind": "gpu", **value}
    raise ValueError(f"{value!r} is not a target; use cpu, gpu, or {{type: a10g, count: 1}}")


def check_env_name(name: str) -> str:
    # checked per key, so the error points at the key and every such key is named
    if SECRET_NAME.search(name):
        raise ValueError(f"{name!r} looks like a secret, and env is baked into the image; pass it at run time instead")
    return name


def stringify_env(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {
        key: (str(item).lower() if isinstance(item, bool) else str(item)) if isinstance(item, (int, float, bool)) else item
        for key, item in value.items()
    }


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


CodeRef = Annotated[str, AfterValidator(check_code_ref)]


class Hooks(Strict):
    pre: CodeRef | None = Field(None, description="module_file:function called before the model")
    post: CodeRef | None = Field(None, description="module_file:function called after the model")


class Batch(Strict):
    max_size: int = Field(64, ge=1, le=100_000, description="Most rows in one call of the model.")
    max_wait_ms: float = Field(0, ge=0, le=60_000, description="How long a batch that is not full waits for more rows.")


# Model types whose call takes one input rather than rows along a first axis.
UNBATCHABLE = {"spacy": "a spacy model is called once per text (a Doc per text), so its inputs have no rows to batch"}


class Stage(Strict):
    type: ModelType = Field(description="How the model file is loaded and called.")
    file: str = Field(description="Model file or folder relative to conduit.yaml; model.py:Class for python.")
    hooks: Hooks = Hooks()
    options: dict[str, Any] = Field(default_factory=dict, description="Loader options, e.g. {task: ...}.")
    batch: Batch | None = Field(
        None, description="Requests waiting for this stage share one model call, their inputs concatenated along "
                          "the first axis (row-wise models: sklearn*, xgboost*, onnx, torch). Absent: no batching."
    )
    weights: list[str] = Field(
        default_factory=list, description="Weights files or folders (relative to conduit.yaml) this stage loads "
                                          "besides `file`, e.g. a python model's checkpoint or a tokenizer folder: "
                                          "with image.weights: separate they travel in the weights artifact.")
    max_new_tokens: int = Field(
        512, ge=1, le=1_000_000, description="hf_pipeline: the most tokens a request's parameters.max_new_tokens "
                                             "(and min_new_tokens) may ask for; past it 422."
    )


class Hardware(Strict):
    kind: Literal["cpu", "gpu"] = "cpu"
    type: str | None = Field(None, description="Accelerator type, e.g. a10g.")
    count: int = Field(1, ge=1)

    @property
    def gpu(self) -> bool:
        return self.kind == "gpu"


HARDWARE_SCHEMA = {
    "anyOf": [
        {"enum": ["cpu", "gpu"]},
        {
            "type": "object",
            "properties": {"type": {"type": "string"}, "count": {"type": "integer", "minimum": 1}},
            "additionalProperties": False,
        },
    ],
    "default": "cpu",
    "description": "cpu | gpu, or a GPU as {type: a10g, count: 1}",
}


# The loader turns numbers and booleans into strings, so editors must accept them too.
ENV_SCHEMA = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "boolean"]},
    "description": "Plain runtime environment, baked into the image: never secrets.",
}


WORKERS_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "auto"}]}


class Server(Strict):
    port: int = Field(8000, ge=1, le=65535)
    api_key_env: str = Field("CONDUIT_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    max_body_mb: float = Field(100, gt=0)
    timeout_s: float = Field(180, gt=0)
    max_concurrency: int = Field(4, ge=1)
    max_queue: int = Field(64, ge=0)
    workers: Annotated[int | Literal["auto"], BeforeValidator(check_workers), WithJsonSchema(WORKERS_SCHEMA)] = Field(
        1, description="Server processes sharing the port, each with its own model; auto: one per usable CPU."
    )
    async_timeout_s: float = Field(3600, gt=0, description="An async prediction's limit, from acceptance to its end.")
    async_max_queue: int = Field(1000, ge=0, description="Async predictions waiting to run; past it 429.")
    async_ttl_s: float = Field(3600, gt=0, description="How long an async prediction's result is kept.")
    async_max_results: int = Field(10000, ge=1, description="At most this many results kept; oldest evicted first.")
    async_store: str = Field(
        "memory", pattern=r"^(memory|redis://[^/@:]+(:[0-9]+)?(/[0-9]+)?)$",
        description="memory (one process) or redis://HOST:PORT/DB, shared by every replica (no password in it).",
    )
    webhook_secret_env: str = Field(
        "CONDUIT_WEBHOOK_SECRET", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The variable holding the Standard Webhooks secret (whsec_…) that signs webhooks.",
    )
    docs: bool = Field(True, description="GET /docs: Swagger UI to try the model from a browser (served offline).")
    wedge_restart_s: float | None = Field(
        None, gt=0, description="GET /live answers 503 (the orchestrator restarts the server) once /ready has said "
                                "`wedged` this long; default 3 x timeout_s.",
    )
    drain_delay_s: float = Field(
        5, ge=0, description="After SIGTERM, /ready answers 503 at once but predictions are still admitted this "
                             "long (while load balancers stop routing here); then the server drains and exits.",
    )
    max_buffered_mb: float = Field(
        1024, gt=0, description="Request bodies held in memory at once, all requests together; past it 429.",
    )

    @property
    def stop_grace_s(self) -> int:
        """SIGTERM to SIGKILL that loses no request (Kubernetes' grace period, the Docker swap's
        stop): admitted for drain_delay_s while balancers stop routing here (the preStop sleep
        other servers need), then the requests in flight finish (timeout_s bounds them), with a
        margin for the process to exit."""
        return math.ceil(self.drain_delay_s + self.timeout_s) + 10
    webhook_allowed_hosts: list[Annotated[str, AfterValidator(check_webhook_host)]] = Field(
        default_factory=list, description="Host names (exact) or CIDR ranges a webhook may reach although they are "
        "loopback, private, link-local, multicast or reserved (refused otherwise: 400 webhook_not_allowed).")
    async_max_attempts: int = Field(3, ge=1, description="Model starts of an async prediction whose holder died "
                                    "(Redis store); past them it ends failed, attempts_exhausted.")


class Image(Strict):
    repository: str | None = Field(None, pattern=REPOSITORY, description="Where `conduit push` sends the image (no tag).")
    base: str = Field("python:3.11-slim", description="Base image (default: python:<python>-slim)")
    # Used in the builder stage only; none of them reaches the final image. An index URL
    # that carries credentials belongs in CONDUIT_PIP_INDEX_URL, not in this file.
    index_url: str | None = Field(None, description="pip --index-url (or CONDUIT_PIP_INDEX_URL)")
    extra_index_urls: list[str] = Field(default_factory=list, description="pip --extra-index-url (or CONDUIT_PIP_EXTRA_INDEX_URL)")
    find_links: str | None = Field(None, description="A folder of wheels inside the project (or CONDUIT_PIP_FIND_LINKS)")
    ca_bundle: str | None = Field(None, description="A CA bundle for pip's HTTPS (or CONDUIT_CA_BUNDLE)")
    dockerfile: str | None = Field(
        None, description='Your own Dockerfile template: {% extends "conduit/Dockerfile.j2" %} and override blocks'
    )
    weights: Literal["bundled", "separate"] = Field(
        "bundled", description="bundled: the model files are layers of the image; separate: they form a weights "
                               "artifact (an OCI image pinned by digest) fetched or mounted at start, and a retrain "
                               "keeps the server image as it is.")
    weights_repository: str | None = Field(
        None, pattern=REPOSITORY, description="Where `conduit push` sends the weights artifact (default: "
                                              "<image.repository or name>-weights).")


class Form(Strict):
    data: Any = None
    files: list[str] = Field(default_factory=list)


class Expect(Strict):
    result: Any = Field(description="The expected result list.")
    tolerance: float | None = Field(None, ge=0, description="Numbers may differ by this much.")


class TestCase(Strict):
    name: str = Field(pattern=r"^\S.*$")
    json_: Any = Field(None, alias="json", description="The JSON body sent to /predict.")
    form: Form | None = None
    v2: dict[str, Any] | None = Field(
        None, description="An Open Inference Protocol infer request ({inputs: [{name, shape, datatype, data}]}) "
                          "sent to /v2/models/<name>/infer; expect.result is then its first output's data.")
    expect: Expect | None = None
    stream: bool = Field(False, description="Ask for Server-Sent Events (Accept: text/event-stream) and check "
                                            "the completed event's envelope.")
    async_: bool = Field(False, alias="async", description="Submit with Prefer: respond-async, poll GET "
                                                           "/predictions/{id}, then check the answer.")


class DockerDeploy(Strict):
    host: str | None = Field(None, pattern=r"^(unix|tcp|ssh)://\S+$",
                             description="unix://, tcp:// or ssh:// engine; default DOCKER_HOST, then the local socket")
    port: int = Field(8000, ge=1, le=65535, description="Host port the model answers on")
    restart: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    ready_timeout_s: float = Field(120, gt=0, description="How long a new version may take to report /ready")


class ResourceAmounts(Strict):
    cpu: str | None = Field(None, pattern=r"^\d+(\.\d+)?m?$", description="e.g. 500m or 2")
    memory: str | None = Field(None, pattern=r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$", description="e.g. 512Mi")


class Resources(Strict):
    requests: ResourceAmounts = ResourceAmounts(cpu="500m", memory="512Mi")
    limits: ResourceAmounts = ResourceAmounts(memory="1Gi")


class KubernetesDeploy(Strict):
    namespace: str = Field("models", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    replicas: int = Field(2, ge=1)
    max_replicas: int | None = Field(None, ge=1, description="HorizontalPodAutoscaler ceiling (default: 2 x replicas)")
    target_cpu_percent: int = Field(70, ge=1, le=100)
    out: str = Field("deploy/", description="Folder the manifests are written to")
    api_key_secret: str | None = Field(None, description="Secret holding the key under `api-key` (default: <name>-api-key)")
    resources: Resources = Resources()
    image_volume: bool = Field(False, description="With separate weights (image.weights: separate): mount the weights "
                               "artifact as an image volume (Kubernetes >= 1.33 with the ImageVolume feature) instead "
                               "of fetching it in an init container")
    registry_secret: str | None = Field(None, description="With separate weights fetched by the init container: an "
                                        "optional Secret with `username` and `password` for the weights registry "
                                        "(default: <name>-registry)")


class Deploy(Strict):
    docker: DockerDeploy = DockerDeploy()
    kubernetes: KubernetesDeploy = KubernetesDeploy()


class Config(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="Image and service name.")
    python: Annotated[str, BeforeValidator(check_python_version)] = "3.11"
    hardware: Annotated[Hardware, BeforeValidator(parse_hardware), WithJsonSchema(HARDWARE_SCHEMA)] = Hardware()
    models: list[Stage] = Field(min_length=1, description="Stages run in order; each output is the next input.")
    requirements: list[str] = Field(default_factory=list)
    requirements_file: str | None = None
    system_packages: list[str] = Field(default_factory=list)
    env: Annotated[
        dict[Annotated[str, AfterValidator(check_env_name)], str], BeforeValidator(stringify_env), WithJsonSchema(ENV_SCHEMA)
    ] = Field(default_factory=dict)
    server: Server = Server()
    image: Image = Image()
    tests: list[TestCase] = Field(default_factory=list)
    deploy: Deploy = Deploy()

    @model_validator(mode="before")
    @classmethod
    def base_follows_python(cls, data: Any) -> Any:
        """Without image.base, the image is built on python:<python>-slim."""
        if not isinstance(data, dict) or not isinstance(data.get("image", {}), dict) or "base" in data.get("image", {}):
            return data
        python = data.get("python", "3.11")
        return {**data, "image": {**data.get("image", {}), "base": f"python:{python}-slim"}} if isinstance(python, str) else data


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "conduit.yaml"
    schema["properties"]["hardware"]["default"] = "cpu"  # not the parsed Hardware(), which the file never holds
    return schema
