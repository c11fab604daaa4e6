"""Resource detection (issue 22): container, Kubernetes, cloud and runtime fields found once,
from files and environment variables only, on every event and in the OTLP resource.

The detectors read paths and variables the tests point elsewhere: a fake ``/proc/self``
directory (``cgroup``, ``mountinfo``) and a fake service-account ``namespace`` file, given
as arguments to :func:`wideevents._core.resource.detect` or set on the module
(``PROC_SELF``, ``K8S_NAMESPACE_FILE``) for ``configure()``.
"""

from __future__ import annotations

import platform
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import wideevents
from tests.support.otlp_receiver import running
from wideevents._core import resource
from wideevents.sinks import MemorySink, OTLPSink

CID = "7be92808767a667f35c8505cbf40d14e931ef6db5b0210329cf193b15ba9d605"
OTHER = "0123456789abcdef" * 4
NO_ENV: dict[str, str] = {}
# Every variable detect() reads, unset for the configure() tests so the runner's own
# environment (a CI runner on Kubernetes or in a cloud) cannot leak into the expectations.
ALL_VARS = (
    "KUBERNETES_SERVICE_HOST", "K8S_POD_NAME", "POD_NAME", "HOSTNAME", "K8S_NAMESPACE_NAME",
    "POD_NAMESPACE", "K8S_NODE_NAME", "NODE_NAME", "K8S_CONTAINER_NAME",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_REGION", "AWS_DEFAULT_REGION", "ECS_CONTAINER_METADATA_URI_V4",
    "ECS_CONTAINER_METADATA_URI", "K_SERVICE", "K_REVISION", "FUNCTION_TARGET",
    "FUNCTION_NAME", "CLOUD_RUN_JOB", "GAE_SERVICE", "GAE_VERSION", "GAE_INSTANCE",
    "GOOGLE_CLOUD_PROJECT", "GCP_PROJECT", "GOOGLE_CLOUD_REGION", "FUNCTION_REGION",
    "WEBSITE_SITE_NAME", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION",
    "REGION_NAME", "CONTAINER_APP_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME",
    "SERVICE_VERSION",
)
RUNTIME = {"process.runtime.name": sys.implementation.name,
           "process.runtime.version": platform.python_version()}


def _proc(tmp_path: Path, cgroup: str = "", mountinfo: str = "") -> str:
    proc = tmp_path / "proc_self"
    proc.mkdir(parents=True, exist_ok=True)
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text(mountinfo)
    return str(proc)


def _detect(tmp_path: Path, env: dict[str, str], cgroup: str = "", mountinfo: str = "",
            namespace: str | None = None) -> dict[str, str]:
    ns_file = tmp_path / "namespace"
    if namespace is not None:
        ns_file.write_text(namespace)
    return resource.detect(env, proc_self=_proc(tmp_path, cgroup, mountinfo),
                           namespace_file=str(ns_file))


@pytest.mark.parametrize("cgroup", [
    # cgroup v1 under docker (the layout OpenTelemetry's detectors parse: opentelemetry-go
    # sdk/resource/container.go, containerIDRegex "^.*/(?:.*[-:])?([0-9a-f]+)(?:\.|\s*$)").
    f"12:pids:/docker/{CID}\n11:memory:/docker/{CID}\n",
    # systemd cgroup driver: docker-<id>.scope
    f"0::/system.slice/docker-{CID}.scope\n",
    # Kubernetes on containerd, cgroup v1 and the systemd driver
    f"11:cpuset:/kubepods/besteffort/pod5f3c1e7a-1b2c-4d5e-8f90-1234567890ab/{CID}\n",
    f"0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-{CID}.scope\n",
    # CRI-O and podman
    f"1:name=systemd:/kubepods/burstable/podabc/crio-{CID}\n",
    f"0::/machine.slice/libpod-{CID}.scope\n",
])
def test_container_id_from_cgroup_v1_paths(tmp_path: Path, cgroup: str) -> None:
    """The 64-hex id at the end of a cgroup path is the container id, whatever the runtime."""
    assert CID == _detect(tmp_path, NO_ENV, cgroup=cgroup).get("container.id")


def test_container_id_from_cgroup_v2_mountinfo(tmp_path: Path) -> None:
    """cgroup v2 (``0::/``): the id comes from the runtime's hostname bind mount in mountinfo,
    the method of opentelemetry-java's CgroupV2ContainerIdExtractor; Kubernetes' sandbox
    (pause container) mounts are not this container."""
    mountinfo = (
        "1230 1210 0:51 / / rw,relatime master:1 - overlay overlay rw\n"
        f"1239 1230 8:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/{OTHER}/"
        "hostname /etc/hostname rw,relatime - ext4 /dev/sda1 rw\n"
        f"1240 1230 8:1 /var/lib/docker/containers/{CID}/hostname /etc/hostname "
        "rw,relatime - ext4 /dev/sda1 rw\n"
    )
    assert CID == _detect(tmp_path, NO_ENV, cgroup="0::/\n", mountinfo=mountinfo).get(
        "container.id")


def test_podman_mountinfo_and_no_container(tmp_path: Path) -> None:
    """podman's overlay-containers path is read; a host process (no id anywhere, or no
    files at all) has no container.id."""
    podman = (f"900 800 0:40 /var/lib/containers/storage/overlay-containers/{CID}/userdata/"
              "hostname /etc/hostname rw - tmpfs tmpfs rw\n")
    assert CID == _detect(tmp_path, NO_ENV, cgroup="0::/\n", mountinfo=podman)["container.id"]
    host = "0::/user.slice/user-1000.slice/session-2.scope\n"
    assert "container.id" not in _detect(tmp_path, NO_ENV, cgroup=host, mountinfo="")
    missing = resource.detect(NO_ENV, proc_self=str(tmp_path / "absent"),
                              namespace_file=str(tmp_path / "absent-ns"))
    assert RUNTIME == missing


def test_kubernetes_downward_api_variables(tmp_path: Path) -> None:
    """With KUBERNETES_SERVICE_HOST: the K8S_* names win over the POD_*/NODE_NAME ones."""
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "K8S_POD_NAME": "ranker-7d9f", "POD_NAME": "no",
           "K8S_NAMESPACE_NAME": "search", "POD_NAMESPACE": "no", "K8S_NODE_NAME": "node-3",
           "NODE_NAME": "no", "K8S_CONTAINER_NAME": "app", "HOSTNAME": "no"}
    assert {**RUNTIME, "k8s.pod.name": "ranker-7d9f", "k8s.namespace.name": "search",
            "k8s.node.name": "node-3", "k8s.container.name": "app"} == _detect(tmp_path, env)


def test_kubernetes_fallbacks(tmp_path: Path) -> None:
    """POD_NAME / POD_NAMESPACE / NODE_NAME; else HOSTNAME for the pod and the service
    account's namespace file for the namespace."""
    usual = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAME": "p", "POD_NAMESPACE": "ns",
             "NODE_NAME": "n", "HOSTNAME": "h"}
    assert {**RUNTIME, "k8s.pod.name": "p", "k8s.namespace.name": "ns",
            "k8s.node.name": "n"} == _detect(tmp_path, usual, namespace="file-ns\n")
    bare = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "ranker-abc12"}
    assert {**RUNTIME, "k8s.pod.name": "ranker-abc12", "k8s.namespace.name": "file-ns"} == (
        _detect(tmp_path, bare, namespace="file-ns\n"))


def test_no_kubernetes_without_its_service_host(tmp_path: Path) -> None:
    """POD_NAME or HOSTNAME alone (a laptop, docker run) says nothing about Kubernetes."""
    env = {"POD_NAME": "p", "HOSTNAME": "h", "NODE_NAME": "n"}
    assert RUNTIME == _detect(tmp_path, env, namespace="ns")


@pytest.mark.parametrize("env,expected", [
    ({"AWS_LAMBDA_FUNCTION_NAME": "score", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
      "AWS_REGION": "eu-west-1", "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/06/[$LATEST]abc"},
     {"cloud.provider": "aws", "cloud.platform": "aws_lambda", "cloud.region": "eu-west-1",
      "faas.name": "score", "faas.version": "$LATEST",
      "faas.instance": "2026/12/06/[$LATEST]abc"}),
    ({"ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/x",
      "AWS_DEFAULT_REGION": "us-east-2"},
     {"cloud.provider": "aws", "cloud.platform": "aws_ecs", "cloud.region": "us-east-2"}),
    ({"AWS_DEFAULT_REGION": "ap-south-1"}, {"cloud.provider": "aws", "cloud.region": "ap-south-1"}),
    ({"K_SERVICE": "ranker", "K_REVISION": "ranker-00042", "GOOGLE_CLOUD_PROJECT": "acme",
      "GOOGLE_CLOUD_REGION": "europe-west1"},
     {"cloud.provider": "gcp", "cloud.platform": "gcp_cloud_run", "cloud.region": "europe-west1",
      "cloud.account.id": "acme", "faas.name": "ranker", "faas.version": "ranker-00042"}),
    ({"K_SERVICE": "fn", "FUNCTION_TARGET": "handler", "GCP_PROJECT": "acme"},
     {"cloud.provider": "gcp", "cloud.platform": "gcp_cloud_functions",
      "cloud.account.id": "acme", "faas.name": "fn"}),
    ({"GAE_SERVICE": "default", "GAE_VERSION": "v3", "GAE_INSTANCE": "i-1",
      "GOOGLE_CLOUD_PROJECT": "acme"},
     {"cloud.provider": "gcp", "cloud.platform": "gcp_app_engine", "cloud.account.id": "acme",
      "faas.name": "default", "faas.version": "v3", "faas.instance": "i-1"}),
    ({"GOOGLE_CLOUD_PROJECT": "acme"}, {"cloud.provider": "gcp", "cloud.account.id": "acme"}),
    ({"WEBSITE_SITE_NAME": "mixer", "REGION_NAME": "West Europe"},
     {"cloud.provider": "azure", "cloud.platform": "azure_app_service",
      "cloud.region": "West Europe"}),
    ({"WEBSITE_SITE_NAME": "fn", "FUNCTIONS_WORKER_RUNTIME": "python", "REGION_NAME": "westus"},
     {"cloud.provider": "azure", "cloud.platform": "azure_functions", "cloud.region": "westus",
      "faas.name": "fn"}),
    ({"CONTAINER_APP_NAME": "mixer"},
     {"cloud.provider": "azure", "cloud.platform": "azure_container_apps"}),
])
def test_cloud_from_the_runtimes_own_variables(tmp_path: Path, env: dict[str, str],
                                               expected: dict[str, str]) -> None:
    """Provider, platform and region from the variables each runtime sets (AWS Lambda's
    "Defined runtime environment variables", Cloud Run's "Environment variables" container
    contract, Azure App Service's environment variables reference), semantic-convention
    values of OpenTelemetry's cloud.* and faas.* attributes."""
    assert {**RUNTIME, **expected} == _detect(tmp_path, env)


def test_values_are_cleaned(tmp_path: Path) -> None:
    """Surrounding blanks are stripped; an unprintable value is ignored; 256 chars at most."""
    env = {"KUBERNETES_SERVICE_HOST": "x", "K8S_POD_NAME": "bad\x1b[2Jname", "POD_NAME": "  p  ",
           "K8S_NODE_NAME": "n" * 1000}
    got = _detect(tmp_path, env)
    assert ("p", 256) == (got["k8s.pod.name"], len(got["k8s.node.name"]))


def test_detection_makes_no_network_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cloud's variables at once, with socket creation and name resolution made to
    fail loudly: detection completes, so it opened no connection (no metadata server)."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("resource detection tried the network")

    env = {"AWS_LAMBDA_FUNCTION_NAME": "f", "ECS_CONTAINER_METADATA_URI_V4": "http://x",
           "K_SERVICE": "s", "WEBSITE_SITE_NAME": "w", "KUBERNETES_SERVICE_HOST": "k"}
    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert "aws_lambda" == _detect(tmp_path, env)["cloud.platform"]


# -- on every event, with precedence ----------------------------------------------------------
@pytest.fixture
def fake_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """configure() detecting from a fake container in a fake pod on a fake cloud."""
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(resource, "PROC_SELF", _proc(tmp_path, f"0::/docker/{CID}\n"))
    monkeypatch.setattr(resource, "K8S_NAMESPACE_FILE", str(tmp_path / "absent"))
    for key, value in {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAME": "detected-pod",
                       "POD_NAMESPACE": "detected-ns", "AWS_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(key, value)
    yield


def _one_event(**configure: object) -> dict[str, object]:
    sink = MemorySink()
    wideevents.configure(service_name="svc", sinks=[sink], **configure)  # type: ignore[arg-type]
    with wideevents.event("e"):
        pass
    assert wideevents.flush(5.0)
    (event,) = sink.events
    return event


def test_detected_fields_are_on_every_event(fake_host: None) -> None:
    """configure() detects once; every event carries what was found."""
    event = _one_event()
    assert {**RUNTIME, "container.id": CID, "k8s.pod.name": "detected-pod",
            "k8s.namespace.name": "detected-ns", "cloud.provider": "aws",
            "cloud.region": "eu-west-1"} == {k: event[k] for k in resource.DETECTED_KEYS
                                             if k in event}


def test_precedence_configure_then_otel_variables_then_detected(
        fake_host: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """configure(static_fields=...) beats OTEL_RESOURCE_ATTRIBUTES, which beats detection
    (docs/schema.md, "Resource fields"; the order of OpenTelemetry's Resource.merge:
    the user's attributes update the detected ones)."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES",
                       "k8s.pod.name=from-otel,cloud.region=from-otel")
    event = _one_event(static_fields={"k8s.pod.name": "from-configure"})
    assert ("from-configure", "from-otel", "detected-ns", CID) == (
        event["k8s.pod.name"], event["cloud.region"], event["k8s.namespace.name"],
        event["container.id"])


def test_detect_resource_false_turns_detection_off(fake_host: None) -> None:
    """detect_resource=False: none of the detected fields, OTEL_RESOURCE_ATTRIBUTES still
    applies."""
    event = _one_event(detect_resource=False)
    assert [] == [k for k in resource.DETECTED_KEYS if k in event]


def test_detection_runs_once_at_configure(fake_host: None, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Files changed after configure() do not change the events: detected once."""
    sink = MemorySink()
    wideevents.configure(service_name="svc", sinks=[sink])
    monkeypatch.setattr(resource, "PROC_SELF", _proc(tmp_path / "later", f"0::/docker/{OTHER}\n"))
    monkeypatch.setenv("POD_NAME", "renamed")
    for _ in range(2):
        with wideevents.event("e"):
            pass
    threads = [threading.Thread(target=lambda: wideevents.event("t").finish()) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wideevents.flush(5.0)
    events = sink.events
    assert {(CID, "detected-pod")} == {(e["container.id"], e["k8s.pod.name"]) for e in events}


def test_a_bad_detect_resource_fails_loudly() -> None:
    """detect_resource must be a bool: the message says what to pass."""
    with pytest.raises(wideevents.ConfigurationError, match="pass True"):
        wideevents.configure(sinks="none", detect_resource="no")  # type: ignore[arg-type]


def test_detected_fields_are_otlp_resource_attributes(fake_host: None) -> None:
    """Through the OTLPSink to a real loopback OTLP receiver: the detected fields are
    resource attributes (OpenTelemetry resource semantic conventions), not record ones."""
    with running() as rx:
        wideevents.configure(service_name="svc", sinks=[OTLPSink(
            rx.url, send_interval=0.01, backoff_initial=0.01, backoff_max=0.05)])
        with wideevents.event("e"):
            pass
        assert wideevents.flush(10.0)
        (got,) = rx.received("logs")
    assert (CID, "detected-pod", "aws", sys.implementation.name) == (
        got.resource.get("container.id"), got.resource.get("k8s.pod.name"),
        got.resource.get("cloud.provider"), got.resource.get("process.runtime.name"))
    assert [] == [k for k in resource.DETECTED_KEYS if k in got.attributes]
