"""The Tutor plugin: settings, patches and images of authz-flag-consumer.

Every setting is `tutor config save --set AUTHZ_CONSUMER_<NAME>=...`. The consumer's own
settings keep the names of the binary's environment variables (AUTHZ_CONSUMER_BROKERS here is
AUTHZ_CONSUMER_BROKERS in the container), so the binary's documentation applies as written.
"""

from __future__ import annotations

import importlib.resources
import json
import urllib.parse

from tutor import hooks

from . import __version__

REPOSITORY = "https://github.com/openedx/authz-flag-consumer"

# The consumer binary's settings, one per flag of `consumer run` (same names as its
# AUTHZ_CONSUMER_* environment variables, without the prefix). Empty strings mean "the binary's
# default"; the binary treats an empty variable as unset.
CONSUMER_SETTINGS: dict[str, object] = {
    # mysql://... built from Tutor's own MySQL settings; the password is percent-encoded.
    "DATABASE_URL": (
        "mysql://{{ OPENEDX_MYSQL_USERNAME|authz_consumer_urlquote }}:"
        "{{ OPENEDX_MYSQL_PASSWORD|authz_consumer_urlquote }}@{{ MYSQL_HOST }}:{{ MYSQL_PORT }}/"
        "{{ OPENEDX_MYSQL_DATABASE }}"
    ),
    # Tutor runs no Kafka: point this at yours (comma-separated host:port).
    "BROKERS": "kafka:9092",
    # The LMS/CMS's EVENT_BUS_TOPIC_PREFIX, set by this plugin to the same value.
    "TOPIC_PREFIX": "openedx",
    # Full topic name: the prefix and the producer's base topic.
    "TOPIC": (
        "{% if AUTHZ_CONSUMER_TOPIC_PREFIX %}{{ AUTHZ_CONSUMER_TOPIC_PREFIX }}-{% endif %}"
        "{{ AUTHZ_CONSUMER_PRODUCER_TOPIC }}"
    ),
    "GROUP_ID": "authz-flag-consumer",
    "DEAD_LETTER_TOPIC": "",  # empty: <topic>.parked
    "SCHEMA_REGISTRY_URL": "http://schema-registry:8081",
    "SCHEMA_REGISTRY_USER": "",
    "SCHEMA_REGISTRY_PASSWORD": "",
    "SASL_MECHANISM": "",  # "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    "SASL_USER": "",
    "SASL_PASSWORD": "",
    "TLS": False,
    # Paths inside the container; the files come from AUTHZ_CONSUMER_TLS_LOCAL_DIR (tutor local)
    # or AUTHZ_CONSUMER_TLS_K8S_SECRET (tutor k8s), mounted at /etc/authz-consumer/tls.
    "TLS_CA_FILE": "",
    "TLS_CERT_FILE": "",
    "TLS_KEY_FILE": "",
    "WATCHED_FLAG": "authz.enable_course_authoring",
    # Off: events are acknowledged and recorded as "disabled", no role moves. Turn it on once
    # the LMS/CMS run with ENABLE_AUTOMATIC_AUTHZ_COURSE_AUTHORING_MIGRATION off (this plugin
    # sets that).
    "AUTO_MIGRATE": False,
    "HTTP_ADDR": ":8080",
    "LOG_LEVEL": "info",
    "LOG_FORMAT": "json",
    "RETRY_MAX_BACKOFF": "30s",
    "NOT_VISIBLE_LIMIT": "15s",
    "SWEEP_INTERVAL": "1m",
    "RECONCILE_GLOBAL": False,
    "MIN_BACKOFF": "100ms",
    "SESSION_TIMEOUT": "10s",
    "HEARTBEAT_INTERVAL": "3s",
    "REBALANCE_TIMEOUT": "30s",
    "COMMIT_INTERVAL": "250ms",
    "LOCK_TIMEOUT": "30s",
    "PROGRESS_INTERVAL": "5s",
}

# Settings of the deployment around the binary, and of the LMS/CMS side.
DEPLOYMENT_SETTINGS: dict[str, object] = {
    "VERSION": __version__,
    # Run the consumer next to the platform (off: it runs elsewhere, e.g. from the Helm chart,
    # and this plugin only configures the LMS/CMS).
    "RUN": True,
    # No public image is published: build it from the repository's Dockerfile and push it
    # under this name (README.md, "Install").
    "DOCKER_IMAGE": "{{ DOCKER_REGISTRY }}openedx/authz-flag-consumer:{{ AUTHZ_CONSUMER_VERSION }}",
    "K8S_REPLICAS": 1,
    # Above the longest migration run: SIGTERM lets the event in hand finish.
    "K8S_TERMINATION_GRACE_PERIOD_SECONDS": 120,
    "K8S_CPU_REQUEST": "100m",
    "K8S_MEMORY_REQUEST": "128Mi",
    "K8S_MEMORY_LIMIT": "512Mi",
    "TLS_LOCAL_DIR": "",  # host directory with PEM files, mounted read-only (tutor local)
    "TLS_K8S_SECRET": "",  # Secret with PEM files, mounted read-only (tutor k8s)
    # The producer plugin installed into the openedx image (pip requirement).
    "PRODUCER_REQUIREMENT": (
        "openedx-authz-flag-events[kafka] @ git+" + REPOSITORY + "@v{{ AUTHZ_CONSUMER_VERSION }}"
        "#subdirectory=python"
    ),
    # Base topic of the producer (AUTHZ_FLAG_EVENTS_TOPIC), without the prefix.
    "PRODUCER_TOPIC": "waffle-flag-override-lifecycle",
    # Switch the LMS/CMS event bus producer to Kafka (Tutor's default bus is Redis, which the
    # consumer cannot read). Off: the event bus settings are left to you.
    "EVENT_BUS_KAFKA": True,
    "PRODUCER_BOOTSTRAP_SERVERS": "{{ AUTHZ_CONSUMER_BROKERS }}",
    # edx-event-bus-kafka authenticates with SASL/PLAIN over TLS only, when both are set.
    "PRODUCER_KAFKA_API_KEY": "",
    "PRODUCER_KAFKA_API_SECRET": "",
    "PRODUCER_SCHEMA_REGISTRY_URL": "{{ AUTHZ_CONSUMER_SCHEMA_REGISTRY_URL }}",
    "PRODUCER_SCHEMA_REGISTRY_API_KEY": "{{ AUTHZ_CONSUMER_SCHEMA_REGISTRY_USER }}",
    "PRODUCER_SCHEMA_REGISTRY_API_SECRET": "{{ AUTHZ_CONSUMER_SCHEMA_REGISTRY_PASSWORD }}",
}

def _urlquote(value: object) -> str:
    """Percent-encodes a URL component completely (a password may hold '@', ':' or '/')."""
    return urllib.parse.quote(str(value), safe="")


def _str_value(value: object) -> str:
    """A setting as a double-quoted YAML scalar (JSON is YAML); booleans as the binary parses them."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return json.dumps(str(value))


def _env_value(value: object) -> str:
    """As _str_value, for an environment value: docker compose interpolates "$" and Kubernetes
    expands "$(NAME)"; both read "$$" as one "$"."""
    return _str_value(value).replace("$", "$$")


hooks.Filters.CONFIG_DEFAULTS.add_items(
    [(f"AUTHZ_CONSUMER_{name}", value) for name, value in {**CONSUMER_SETTINGS, **DEPLOYMENT_SETTINGS}.items()]
)

hooks.Filters.ENV_TEMPLATE_FILTERS.add_items(
    [
        ("authz_consumer_urlquote", _urlquote),
        ("authz_consumer_str", _str_value),
        ("authz_consumer_env", _env_value),
    ]
)

hooks.Filters.IMAGES_PULL.add_item(("authz-consumer", "{{ AUTHZ_CONSUMER_DOCKER_IMAGE }}"))
hooks.Filters.IMAGES_PUSH.add_item(("authz-consumer", "{{ AUTHZ_CONSUMER_DOCKER_IMAGE }}"))

# One file per patch in patches/, named after the patch.
for _patch in importlib.resources.files("tutor_authz_consumer").joinpath("patches").iterdir():
    if _patch.is_file() and not _patch.name.startswith("."):
        hooks.Filters.ENV_PATCHES.add_item((_patch.name, _patch.read_text(encoding="utf-8")))
