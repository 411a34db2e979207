"""The plugin under the real tutor CLI: `tutor config save` renders the environment for
`tutor local` and `tutor k8s`; these tests read what it rendered.

Each case renders into its own TUTOR_ROOT. With AUTHZ_TUTOR_OUT set (scripts/tutor.sh sets it),
the roots are kept there so that the script can validate them afterwards (kubeconform, the
compose loader). AUTHZ_TUTOR_CONSUMER_ENV names a file listing the binary's AUTHZ_CONSUMER_*
variables, one a line (from `consumer run --help`): every one must have a Tutor setting.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tutor_authz_consumer.plugin import CONSUMER_SETTINGS

# The tutor script of the environment running the tests.
TUTOR = [str(Path(sys.executable).parent / "tutor")]
OUT = os.environ.get("AUTHZ_TUTOR_OUT")

SECRET_VARS = {
    "AUTHZ_CONSUMER_DATABASE_URL",
    "AUTHZ_CONSUMER_SASL_PASSWORD",
    "AUTHZ_CONSUMER_SCHEMA_REGISTRY_PASSWORD",
}


def binary_env_vars() -> list[str]:
    path = os.environ.get("AUTHZ_TUTOR_CONSUMER_ENV")
    if not path:
        pytest.fail("AUTHZ_TUTOR_CONSUMER_ENV is not set: run the tests with scripts/tutor.sh test")
    names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    assert len(names) >= 20, f"too few variables in {path}: {names}"
    return names


class Rendered:
    """One `tutor config save` in a fresh root, and readers for what it rendered."""

    def __init__(self, root: Path, settings: dict[str, str], enable: bool = True):
        self.root = root
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        env = {**os.environ, "TUTOR_ROOT": str(root), "TUTOR_PLUGINS_ROOT": str(root / "plugins-root")}
        if enable:
            self.tutor(env, "plugins", "enable", "authz_consumer")
        args = ["config", "save"]
        for key, value in settings.items():
            args += ["--set", f"{key}={value}"]
        self.tutor(env, *args)
        self.env = env
        self.config = yaml.safe_load((root / "config.yml").read_text())

    @staticmethod
    def tutor(env: dict[str, str], *args: str) -> str:
        proc = subprocess.run([*TUTOR, *args], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"tutor {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    def printvalue(self, key: str) -> str:
        return self.tutor(self.env, "config", "printvalue", key).strip()

    def compose(self) -> dict:
        return yaml.safe_load((self.root / "env/local/docker-compose.yml").read_text())

    def k8s(self, name: str) -> list[dict]:
        return [d for d in yaml.safe_load_all((self.root / "env/k8s" / name).read_text()) if d]

    def k8s_object(self, name: str, kind: str, obj: str) -> dict | None:
        for doc in self.k8s(name):
            if doc["kind"] == kind and doc["metadata"]["name"] == obj:
                return doc
        return None

    def settings_text(self, service: str, flavour: str) -> str:
        return (self.root / f"env/apps/openedx/settings/{service}/{flavour}.py").read_text()

    def plugin_settings(self, service: str, flavour: str = "production") -> dict:
        """The plugin's block of the rendered LMS/CMS settings, executed on its own."""
        text = self.settings_text(service, flavour)
        m = re.search(r"^# authz-flag-consumer \(tutor plugin authz_consumer\)\n(.*?)^######## ", text, re.M | re.S)
        assert m, f"no authz_consumer block in {service}/{flavour}.py"
        ns: dict = {}
        exec(compile(m.group(1), f"{service}/{flavour}.py", "exec"), ns)
        return {k: v for k, v in ns.items() if not k.startswith("__")}


def render(name: str, tmp_path: Path, settings: dict[str, str] | None = None, enable: bool = True) -> Rendered:
    root = Path(OUT) / name if OUT else tmp_path / name
    return Rendered(root, settings or {}, enable=enable)


def container_env(deployment: dict) -> dict[str, dict]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_defaults_local_compose_service(tmp_path):
    r = render("defaults", tmp_path)
    svc = r.compose()["services"]["authz-consumer"]
    assert svc["image"] == "docker.io/openedx/authz-flag-consumer:0.1.0"
    assert svc["command"] == ["run"]
    assert svc["restart"] == "unless-stopped"
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    assert svc["stop_grace_period"] == "120s"
    assert svc["depends_on"] == ["lms", "mysql"]
    env = svc["environment"]
    assert env["AUTHZ_CONSUMER_DATABASE_URL"] == (
        f"mysql://openedx:{r.config['OPENEDX_MYSQL_PASSWORD']}@mysql:3306/openedx"
    )
    assert env["AUTHZ_CONSUMER_BROKERS"] == "kafka:9092"
    assert env["AUTHZ_CONSUMER_TOPIC"] == "openedx-waffle-flag-override-lifecycle"
    assert env["AUTHZ_CONSUMER_AUTO_MIGRATE"] == "false"
    assert env["AUTHZ_CONSUMER_SWEEP_INTERVAL"] == "1m"
    # Every variable of the binary is set, each from a Tutor setting of the same name with a default.
    names = binary_env_vars()
    assert sorted(env) == sorted(names)
    assert sorted(f"AUTHZ_CONSUMER_{k}" for k in CONSUMER_SETTINGS) == sorted(names)


def test_defaults_k8s_deployment_secret_service(tmp_path):
    r = render("defaults-k8s", tmp_path)
    dep = r.k8s_object("deployments.yml", "Deployment", "authz-consumer")
    assert dep, "no authz-consumer Deployment"
    spec = dep["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["image"] == "docker.io/openedx/authz-flag-consumer:0.1.0"
    assert c["args"] == ["run"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["ports"] == [{"name": "http", "containerPort": 8080}]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsUser"] == 65532 and spec["securityContext"]["runAsNonRoot"]
    assert spec["terminationGracePeriodSeconds"] == 120
    assert dep["spec"]["replicas"] == 1
    env = container_env(dep)
    assert sorted(env) == sorted(binary_env_vars())
    for name in SECRET_VARS:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "authz-consumer", "key": name}
        assert "value" not in env[name]
    secret = r.k8s_object("deployments.yml", "Secret", "authz-consumer")
    assert secret["stringData"]["AUTHZ_CONSUMER_DATABASE_URL"] == (
        f"mysql://openedx:{r.config['OPENEDX_MYSQL_PASSWORD']}@mysql:3306/openedx"
    )
    assert r.config["OPENEDX_MYSQL_PASSWORD"] not in (r.root / "env/k8s/deployments.yml").read_text().split(
        "kind: Deployment\nmetadata:\n  name: authz-consumer"
    )[-1], "the database password leaked into the Deployment"
    svc = r.k8s_object("services.yml", "Service", "authz-consumer")
    assert svc["spec"]["ports"][0]["port"] == 8080
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "authz-consumer"}


@pytest.mark.parametrize("service", ["lms", "cms"])
@pytest.mark.parametrize("flavour", ["production", "development"])
def test_defaults_openedx_settings(tmp_path, service, flavour):
    r = render(f"settings-{service}-{flavour}", tmp_path)
    s = r.plugin_settings(service, flavour)
    assert s == {
        "ENABLE_AUTOMATIC_AUTHZ_COURSE_AUTHORING_MIGRATION": False,
        "AUTHZ_FLAG_EVENTS_WATCHED_FLAGS": ["authz.enable_course_authoring"],
        "AUTHZ_FLAG_EVENTS_TOPIC": "waffle-flag-override-lifecycle",
        "EVENT_BUS_PRODUCER": "edx_event_bus_kafka.create_producer",
        "EVENT_BUS_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL": "http://schema-registry:8081",
        "EVENT_BUS_TOPIC_PREFIX": "openedx",
    }
    # The block comes after Tutor's own Redis event bus settings (tutor 22 has them, tutor 20 none), so it wins.
    text = r.settings_text(service, flavour)
    if "edx_event_bus_redis.create_producer" in text:
        assert text.index("edx_event_bus_redis.create_producer") < text.index("edx_event_bus_kafka.create_producer")


def test_defaults_openedx_image_installs_the_producer(tmp_path):
    r = render("dockerfile", tmp_path)
    dockerfile = (r.root / "env/build/openedx/Dockerfile").read_text()
    want = (
        "$PIP_COMMAND install \"openedx-authz-flag-events[kafka] @ "
        "git+https://github.com/openedx/authz-flag-consumer@v0.1.0#subdirectory=python\""
    )
    assert want in dockerfile
    # After edx-platform's requirements, so its pins are installed first.
    assert dockerfile.index("requirements/edx/base.txt") < dockerfile.index(want)


def test_custom_settings(tmp_path):
    r = render(
        "custom",
        tmp_path,
        {
            "OPENEDX_MYSQL_USERNAME": "edx",
            "OPENEDX_MYSQL_PASSWORD": 'p@ss:w/rd$1"',
            "MYSQL_HOST": "db.example.com",
            "MYSQL_PORT": "3307",
            "OPENEDX_MYSQL_DATABASE": "edxapp",
            "AUTHZ_CONSUMER_BROKERS": "kafka-0:9093,kafka-1:9093",
            "AUTHZ_CONSUMER_TOPIC_PREFIX": "prod",
            "AUTHZ_CONSUMER_AUTO_MIGRATE": "true",
            "AUTHZ_CONSUMER_RECONCILE_GLOBAL": "true",
            "AUTHZ_CONSUMER_SASL_MECHANISM": "SCRAM-SHA-512",
            "AUTHZ_CONSUMER_SASL_USER": "authz",
            "AUTHZ_CONSUMER_SASL_PASSWORD": "s3cr$t",
            "AUTHZ_CONSUMER_TLS": "true",
            "AUTHZ_CONSUMER_TLS_CA_FILE": "/etc/authz-consumer/tls/ca.crt",
            "AUTHZ_CONSUMER_TLS_K8S_SECRET": "kafka-ca",
            "AUTHZ_CONSUMER_TLS_LOCAL_DIR": "/srv/kafka-tls",
            "AUTHZ_CONSUMER_K8S_REPLICAS": "3",
            "AUTHZ_CONSUMER_HTTP_ADDR": ":9100",
            "AUTHZ_CONSUMER_DOCKER_IMAGE": "registry.example.com/authz-flag-consumer:1.2.3",
            "AUTHZ_CONSUMER_PRODUCER_KAFKA_API_KEY": "producer",
            "AUTHZ_CONSUMER_PRODUCER_KAFKA_API_SECRET": "psecret",
            "AUTHZ_CONSUMER_SCHEMA_REGISTRY_USER": "reg",
            "AUTHZ_CONSUMER_SCHEMA_REGISTRY_PASSWORD": "regpass",
        },
    )
    url = "mysql://edx:p%40ss%3Aw%2Frd%241%22@db.example.com:3307/edxapp"
    svc = r.compose()["services"]["authz-consumer"]
    env = svc["environment"]
    assert env["AUTHZ_CONSUMER_DATABASE_URL"] == url
    assert env["AUTHZ_CONSUMER_TOPIC"] == "prod-waffle-flag-override-lifecycle"
    assert env["AUTHZ_CONSUMER_AUTO_MIGRATE"] == "true"
    assert env["AUTHZ_CONSUMER_RECONCILE_GLOBAL"] == "true"
    assert env["AUTHZ_CONSUMER_TLS"] == "true"
    # docker compose reads "$$" as "$".
    assert env["AUTHZ_CONSUMER_SASL_PASSWORD"] == "s3cr$$t"
    assert svc["volumes"] == ["/srv/kafka-tls:/etc/authz-consumer/tls:ro"]
    assert svc["image"] == "registry.example.com/authz-flag-consumer:1.2.3"

    dep = r.k8s_object("deployments.yml", "Deployment", "authz-consumer")
    assert dep["spec"]["replicas"] == 3
    kenv = container_env(dep)
    assert kenv["AUTHZ_CONSUMER_BROKERS"]["value"] == "kafka-0:9093,kafka-1:9093"
    assert kenv["AUTHZ_CONSUMER_HTTP_ADDR"]["value"] == ":9100"
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["ports"] == [{"name": "http", "containerPort": 9100}]
    assert {"name": "kafka-tls", "mountPath": "/etc/authz-consumer/tls", "readOnly": True} in c["volumeMounts"]
    assert {"name": "kafka-tls", "secret": {"secretName": "kafka-ca"}} in dep["spec"]["template"]["spec"]["volumes"]
    secret = r.k8s_object("deployments.yml", "Secret", "authz-consumer")
    # A Secret's stringData is not expanded: the value stays as it is.
    assert secret["stringData"] == {
        "AUTHZ_CONSUMER_DATABASE_URL": url,
        "AUTHZ_CONSUMER_SASL_PASSWORD": "s3cr$t",
        "AUTHZ_CONSUMER_SCHEMA_REGISTRY_PASSWORD": "regpass",
    }
    assert r.k8s_object("services.yml", "Service", "authz-consumer")["spec"]["ports"][0]["port"] == 9100

    s = r.plugin_settings("lms")
    assert s["EVENT_BUS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka-0:9093,kafka-1:9093"
    assert s["EVENT_BUS_TOPIC_PREFIX"] == "prod"
    assert s["EVENT_BUS_KAFKA_API_KEY"] == "producer" and s["EVENT_BUS_KAFKA_API_SECRET"] == "psecret"
    assert s["EVENT_BUS_KAFKA_SCHEMA_REGISTRY_API_KEY"] == "reg"
    assert s["EVENT_BUS_KAFKA_SCHEMA_REGISTRY_API_SECRET"] == "regpass"
    assert s["ENABLE_AUTOMATIC_AUTHZ_COURSE_AUTHORING_MIGRATION"] is False


def test_consumer_elsewhere_and_own_event_bus(tmp_path):
    """RUN off (the consumer runs from the Helm chart, say) and EVENT_BUS_KAFKA off (the event
    bus is configured elsewhere): only the producer side stays."""
    r = render("producer-only", tmp_path, {"AUTHZ_CONSUMER_RUN": "false", "AUTHZ_CONSUMER_EVENT_BUS_KAFKA": "false"})
    assert "authz-consumer" not in r.compose()["services"]
    assert r.k8s_object("deployments.yml", "Deployment", "authz-consumer") is None
    assert r.k8s_object("deployments.yml", "Secret", "authz-consumer") is None
    assert r.k8s_object("services.yml", "Service", "authz-consumer") is None
    s = r.plugin_settings("cms")
    assert s["ENABLE_AUTOMATIC_AUTHZ_COURSE_AUTHORING_MIGRATION"] is False
    assert "EVENT_BUS_PRODUCER" not in s


def test_disabled_plugin_renders_nothing(tmp_path):
    r = render("disabled", tmp_path, enable=False)
    assert "authz-consumer" not in r.compose()["services"]
    assert "authz-consumer" not in (r.root / "env/k8s/deployments.yml").read_text()
    assert "ENABLE_AUTOMATIC_AUTHZ_COURSE_AUTHORING_MIGRATION" not in r.settings_text("lms", "production")
