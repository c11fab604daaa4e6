"""Where the process runs: resource fields detected once, from files and variables only.

:func:`detect` is called once by ``configure()`` (and by the default pipeline) unless
``configure(detect_resource=False)``; what it finds is a static field of every event (and an
OTLP resource attribute). It never makes a network call (no cloud metadata server): only
``/proc/self/cgroup``, ``/proc/self/mountinfo``, the Kubernetes service-account namespace
file and environment variables, which tests point elsewhere (the ``env``, ``proc_self``
and ``namespace_file`` arguments, or the module's :data:`PROC_SELF` and
:data:`K8S_NAMESPACE_FILE`).

Detected (OpenTelemetry resource semantic conventions):

- ``process.runtime.name`` / ``process.runtime.version``: ``sys.implementation.name``
  (``cpython``) and the interpreter's version, as OpenTelemetry Python's
  ``ProcessResourceDetector`` reports them;
- ``container.id``: the 64-hex id in ``/proc/self/cgroup`` (cgroup v1; docker, containerd,
  CRI-O and podman paths), else in ``/proc/self/mountinfo`` (cgroup v2, where the cgroup
  path is ``/``: the container's ``/containers/<id>/hostname`` bind mount), the method of
  OpenTelemetry's container detectors (opentelemetry-go ``sdk/resource/container.go``;
  opentelemetry-java ``CgroupV2ContainerIdExtractor``);
- Kubernetes, only when ``KUBERNETES_SERVICE_HOST`` is set (the kubelet sets it in every
  pod): ``k8s.pod.name`` from ``K8S_POD_NAME`` or ``POD_NAME``, else ``HOSTNAME`` (a pod's
  host name is its name); ``k8s.namespace.name`` from ``K8S_NAMESPACE_NAME`` or
  ``POD_NAMESPACE``, else the service-account ``namespace`` file; ``k8s.node.name`` from
  ``K8S_NODE_NAME`` or ``NODE_NAME``; ``k8s.container.name`` from ``K8S_CONTAINER_NAME``.
  The variables other than ``HOSTNAME`` come from the pod spec's downward API
  (``fieldRef: metadata.name``, ``metadata.namespace``, ``spec.nodeName``);
- the cloud, from the variables each runtime sets itself: AWS Lambda
  (``AWS_LAMBDA_FUNCTION_NAME``, ``..._VERSION``), ECS (``ECS_CONTAINER_METADATA_URI_V4``),
  Google Cloud Functions / Cloud Run (``K_SERVICE``, ``K_REVISION``, ``FUNCTION_TARGET``,
  ``CLOUD_RUN_JOB``), App Engine (``GAE_SERVICE``, ``GAE_VERSION``, ``GAE_INSTANCE``), Azure
  Functions / App Service (``WEBSITE_SITE_NAME``, ``FUNCTIONS_WORKER_RUNTIME``,
  ``REGION_NAME``), Azure Container Apps (``CONTAINER_APP_NAME``); the region from
  ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, ``GOOGLE_CLOUD_REGION`` / ``FUNCTION_REGION``,
  ``REGION_NAME``; the account from ``GOOGLE_CLOUD_PROJECT`` / ``GCP_PROJECT``.
  ``AWS_REGION`` alone means ``cloud.provider=aws``: a laptop with it set says so too
  (override with ``OTEL_RESOURCE_ATTRIBUTES`` or ``detect_resource=False``).

Precedence is :mod:`.service`'s: ``configure()`` arguments, then ``OTEL_SERVICE_NAME`` /
``OTEL_RESOURCE_ATTRIBUTES``, then these detected values. Values are text, cut at 256
characters; a file that cannot be read is skipped. Never raises.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Mapping

__all__ = [
    "DETECTED_KEYS", "K8S_NAMESPACE_FILE", "PROC_SELF", "RESOURCE_PREFIXES", "container_id",
    "detect",
]

PROC_SELF = "/proc/self"
K8S_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
#: Field prefixes that describe the emitter: OTLP resource attributes, not record attributes.
RESOURCE_PREFIXES = ("container.", "k8s.", "cloud.", "faas.", "process.runtime.")
#: Every field :func:`detect` may add: identity fields, kept first when an event is too
#: large (``_core/limits.py``), like ``host.name``.
DETECTED_KEYS = (
    "process.runtime.name", "process.runtime.version", "container.id", "k8s.pod.name",
    "k8s.namespace.name", "k8s.node.name", "k8s.container.name", "cloud.provider",
    "cloud.platform", "cloud.region", "cloud.account.id", "faas.name", "faas.version",
    "faas.instance",
)
_MAX_VALUE = 256
_MAX_FILE = 256 * 1024
# cgroup v1: ".../docker/<id>", ".../docker-<id>.scope", ".../cri-containerd-<id>.scope",
# ".../crio-<id>", ".../libpod-<id>.scope", ".../kubepods/.../<id>".
_CGROUP_ID = re.compile(r"(?:^|[/:-])([0-9a-f]{64})(?:\.scope)?\s*$")
# cgroup v2: the runtime bind-mounts the container's hostname/hosts/resolv.conf from a
# directory named after its id (docker: /var/lib/docker/containers/<id>/hostname; podman:
# .../overlay-containers/<id>/userdata/hostname). Kubernetes' pause containers live under
# /sandboxes/ and are not this container.
_MOUNT_ID = re.compile(r"/(?:containers|overlay-containers)/([0-9a-f]{64})/")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(_MAX_FILE)
    except (OSError, ValueError):
        return ""


def _clean(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    if not value or not value.isprintable():
        return None
    return value[:_MAX_VALUE]


def container_id(proc_self: str = PROC_SELF) -> str | None:
    """The container id from cgroup v1, else from the v2 mount table; None outside one."""
    for line in _read(os.path.join(proc_self, "cgroup")).splitlines():
        path = line.split(":", 2)[-1]
        m = _CGROUP_ID.search(path)
        if m:
            return m.group(1)
    for line in _read(os.path.join(proc_self, "mountinfo")).splitlines():
        if "/sandboxes/" in line:
            continue
        m = _MOUNT_ID.search(line)
        if m:
            return m.group(1)
    return None


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = _clean(env.get(name))
        if value:
            return value
    return None


def _kubernetes(env: Mapping[str, str], namespace_file: str) -> dict[str, str]:
    if not env.get("KUBERNETES_SERVICE_HOST"):
        return {}
    found = {
        "k8s.pod.name": _first(env, "K8S_POD_NAME", "POD_NAME", "HOSTNAME"),
        "k8s.namespace.name": (_first(env, "K8S_NAMESPACE_NAME", "POD_NAMESPACE")
                               or _clean(_read(namespace_file))),
        "k8s.node.name": _first(env, "K8S_NODE_NAME", "NODE_NAME"),
        "k8s.container.name": _first(env, "K8S_CONTAINER_NAME"),
    }
    return {k: v for k, v in found.items() if v}


def _cloud(env: Mapping[str, str]) -> dict[str, str | None]:
    get = env.get
    if get("AWS_LAMBDA_FUNCTION_NAME"):
        return {"cloud.provider": "aws", "cloud.platform": "aws_lambda",
                "cloud.region": _first(env, "AWS_REGION", "AWS_DEFAULT_REGION"),
                "faas.name": _first(env, "AWS_LAMBDA_FUNCTION_NAME"),
                "faas.version": _first(env, "AWS_LAMBDA_FUNCTION_VERSION"),
                "faas.instance": _first(env, "AWS_LAMBDA_LOG_STREAM_NAME")}
    if get("ECS_CONTAINER_METADATA_URI_V4") or get("ECS_CONTAINER_METADATA_URI"):
        return {"cloud.provider": "aws", "cloud.platform": "aws_ecs",
                "cloud.region": _first(env, "AWS_REGION", "AWS_DEFAULT_REGION")}
    gcp_region = _first(env, "GOOGLE_CLOUD_REGION", "FUNCTION_REGION")
    gcp_project = _first(env, "GOOGLE_CLOUD_PROJECT", "GCP_PROJECT")
    if get("K_SERVICE") or get("FUNCTION_NAME"):
        functions = bool(get("FUNCTION_TARGET") or get("FUNCTION_NAME"))
        return {"cloud.provider": "gcp",
                "cloud.platform": "gcp_cloud_functions" if functions else "gcp_cloud_run",
                "cloud.region": gcp_region, "cloud.account.id": gcp_project,
                "faas.name": _first(env, "K_SERVICE", "FUNCTION_NAME"),
                "faas.version": _first(env, "K_REVISION")}
    if get("CLOUD_RUN_JOB"):
        return {"cloud.provider": "gcp", "cloud.platform": "gcp_cloud_run",
                "cloud.region": gcp_region, "cloud.account.id": gcp_project,
                "faas.name": _first(env, "CLOUD_RUN_JOB")}
    if get("GAE_SERVICE"):
        return {"cloud.provider": "gcp", "cloud.platform": "gcp_app_engine",
                "cloud.region": gcp_region, "cloud.account.id": gcp_project,
                "faas.name": _first(env, "GAE_SERVICE"), "faas.version": _first(env, "GAE_VERSION"),
                "faas.instance": _first(env, "GAE_INSTANCE")}
    if get("WEBSITE_SITE_NAME"):
        functions = bool(get("FUNCTIONS_WORKER_RUNTIME") or get("FUNCTIONS_EXTENSION_VERSION"))
        return {"cloud.provider": "azure",
                "cloud.platform": "azure_functions" if functions else "azure_app_service",
                "cloud.region": _first(env, "REGION_NAME"),
                "faas.name": _first(env, "WEBSITE_SITE_NAME") if functions else None}
    if get("CONTAINER_APP_NAME"):
        return {"cloud.provider": "azure", "cloud.platform": "azure_container_apps",
                "cloud.region": _first(env, "REGION_NAME")}
    aws_region = _first(env, "AWS_REGION", "AWS_DEFAULT_REGION")
    if aws_region:
        return {"cloud.provider": "aws", "cloud.region": aws_region}
    if gcp_project or gcp_region:
        return {"cloud.provider": "gcp", "cloud.region": gcp_region,
                "cloud.account.id": gcp_project}
    return {}


def detect(env: Mapping[str, str] | None = None, *, proc_self: str | None = None,
           namespace_file: str | None = None) -> dict[str, str]:
    """The resource fields of this process (module docstring). Never raises."""
    env = os.environ if env is None else env
    found: dict[str, str] = {}
    try:
        found["process.runtime.name"] = sys.implementation.name
        found["process.runtime.version"] = platform.python_version()
        cid = container_id(PROC_SELF if proc_self is None else proc_self)
        if cid:
            found["container.id"] = cid
        found.update(_kubernetes(env, K8S_NAMESPACE_FILE if namespace_file is None
                                 else namespace_file))
        for key, value in _cloud(env).items():
            if value:
                found[key] = value
    except Exception:  # noqa: BLE001 - detection is best effort: what was found is kept
        pass
    return found
