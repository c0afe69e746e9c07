"""What serving and deploy need beyond the shape of conduit.yaml, checked by `load()`
so that `conduit validate` reports it as file:line:col, not `conduit serve` or
`conduit deploy` later: names Kubernetes accepts, a GPU type that can match a node
label, replicas and resources the API server would take, workers that can share
what they must (GPUs, async predictions)."""

from __future__ import annotations

import re
from fractions import Fraction

from .positions import Loc, Positions
from .schema import Config

Problem = tuple[Loc, str, tuple[int, int]]

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1035: Services, InferenceServices
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|K|M|G|T|Ki|Mi|Gi|Ti)?$")
QUANTITY_SUFFIX = {
    "": Fraction(1), "m": Fraction(1, 1000),
    "K": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
}


def quantity(text: str) -> Fraction:
    found = QUANTITY.match(text)
    if found is None:  # the schema's patterns allow nothing else
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    return Fraction(found[1]) * QUANTITY_SUFFIX[found[2] or ""]


def max_replicas(config: Config) -> int:
    kube = config.deploy.kubernetes
    return kube.max_replicas if kube.max_replicas is not None else 2 * kube.replicas


def deploy_problems(config: Config, positions: Positions) -> list[Problem]:
    problems: list[Problem] = []

    def bad(loc: Loc, text: str) -> None:
        problems.append((loc, text, positions.of_value(loc)))

    kube = config.deploy.kubernetes
    if not DNS_LABEL.match(config.name):
        bad(("name",), f"{config.name!r} cannot name a Kubernetes Service; start it with a letter and end it with a "
                       "letter or digit")
    if kube.api_key_secret is not None and not DNS_SUBDOMAIN.match(kube.api_key_secret):
        bad(("deploy", "kubernetes", "api_key_secret"), f"{kube.api_key_secret!r} is not a Kubernetes Secret name; "
                                                        "use lowercase letters, digits, '-' and '.'")
    if kube.registry_secret is not None and not DNS_SUBDOMAIN.match(kube.registry_secret):
        bad(("deploy", "kubernetes", "registry_secret"), f"{kube.registry_secret!r} is not a Kubernetes Secret name; "
                                                         "use lowercase letters, digits, '-' and '.'")
    gpu_type = config.hardware.type
    if config.hardware.gpu and gpu_type is not None and not LABEL_VALUE.match(gpu_type):
        bad(("hardware", "type"), f"{gpu_type!r} cannot be matched against node labels; use a short name like a10g "
                                  "or the node's nvidia.com/gpu.product label")
    ceiling = max_replicas(config)
    if ceiling < kube.replicas:
        bad(("deploy", "kubernetes", "max_replicas"), f"max_replicas ({ceiling}) is below replicas ({kube.replicas}); "
                                                      "raise max_replicas or lower replicas")
    requests, limits = kube.resources.requests, kube.resources.limits
    for key in ("cpu", "memory"):
        request, limit = getattr(requests, key), getattr(limits, key)
        if request is not None and limit is not None and quantity(request) > quantity(limit):
            bad(("deploy", "kubernetes", "resources", "requests", key),
                f"requests.{key} ({request}) is above limits.{key} ({limit}); raise the limit or lower the request")
    workers = config.server.workers
    if "workers" in config.server.model_fields_set and isinstance(workers, int) and limits.cpu is not None \
            and quantity(limits.cpu) < workers:
        bad(("server", "workers"), f"{workers} workers each want a CPU, and the pod's limits.cpu is {limits.cpu}; "
                                   "raise deploy.kubernetes.resources.limits.cpu or lower workers")
    problems.extend((("server", "workers"), text, positions.of_value(("server", "workers")))
                    for text in worker_problems(config))
    if ceiling > kube.replicas and requests.cpu is None:
        bad(("deploy", "kubernetes", "resources", "requests", "cpu"),
            "requests.cpu is needed: the autoscaler scales on CPU use relative to it; set it (like 500m), "
            "or set max_replicas equal to replicas")
    return problems


def worker_problems(config: Config) -> list[str]:
    """server.workers that cannot work: each worker process loads its own model, and keeps
    its own memory."""
    server, hardware = config.server, config.hardware
    workers = server.workers
    problems = []
    if hardware.gpu and workers == "auto":
        # One per CPU of the machine it runs on, unknown here, and CPUs outnumber GPUs.
        problems.append(f"auto starts one worker per CPU, each loading the model onto a GPU, and hardware gives "
                        f"{hardware.count} GPU(s); set workers to a number up to hardware.count ({hardware.count})")
    elif hardware.gpu and isinstance(workers, int) and workers > hardware.count:
        problems.append(f"{workers} workers each load the model onto a GPU, and hardware gives {hardware.count}; "
                        f"lower workers to {hardware.count} or raise hardware.count")
    if workers != 1 and server.async_store == "memory":
        problems.append(f"{workers} workers with async_store: memory: an async prediction is known only to the "
                        "worker that accepted it (GET and cancel answer 404 on the others); set "
                        "server.async_store: redis://HOST:PORT/DB, or workers: 1")
    return problems
