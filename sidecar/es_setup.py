"""``obskit-sidecar es-setup``: install the obskit index templates, idempotently.

Installs, in this order (each reported as created / updated / unchanged):

1. component template ``obskit-logs@mappings``: ``trace_id``, ``span_id``, ``service``,
   ``level`` (and ``host``/``pod``/``environment``) as ``keyword``, ``@timestamp`` as ``date``,
   ``timestamp`` as ``date_nanos`` (nanosecond order within a trace), ``message`` as
   ``match_only_text`` (``text`` on clusters without it), other strings as ``keyword``;
2. component template ``obskit-logs@custom``: created empty if missing and never
   overwritten, for your own settings (lifecycle policy, replicas);
3. index template ``obskit-logs`` for ``logs-*-*`` with priority 200 (above Elasticsearch's
   built-in ``logs`` template, 100) and ``data_stream: {}`` (OpenSearch has supported data
   streams since 1.0); ``--no-data-stream`` for index mode.

The JSON bodies ship in ``sidecar/es_templates/``; read them to see exactly what is sent.
"""

from __future__ import annotations

import json
import re
import sys
from importlib import resources
from typing import Any

import click
import httpx

from obskit._http import AuthConfig, ClientConfigError, Credentials, TLSConfig, make_client
from obskit.secrets import SecretError

COMPONENT = "obskit-logs@mappings"
CUSTOM = "obskit-logs@custom"
INDEX_TEMPLATE = "obskit-logs"

Json = dict[str, Any]


class SetupError(Exception):
    """A step failed; the message names the request and Elasticsearch's reason."""


def load_template(name: str) -> Json:
    """One of the shipped JSON bodies (``component``, ``custom``, ``index_template``)."""
    ref = resources.files("sidecar").joinpath("es_templates").joinpath(f"{name}.json")
    text = ref.read_text("utf-8")
    body: Json = json.loads(text)
    return body


def _version(text: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def detect(client: httpx.Client, url: str) -> tuple[str, tuple[int, int]]:
    """``("elasticsearch"|"opensearch", (major, minor))`` from ``GET /``."""
    resp = client.get(url + "/")
    if resp.status_code != 200:
        raise SetupError(f"GET {url}/ answered {resp.status_code}: {_reason(resp)}")
    info = resp.json().get("version", {})
    flavor = "opensearch" if info.get("distribution") == "opensearch" else "elasticsearch"
    return flavor, _version(str(info.get("number", "")))


def supports_match_only_text(flavor: str, version: tuple[int, int]) -> bool:
    # Elasticsearch added match_only_text in 7.14, OpenSearch in 2.12.
    return version >= ((2, 12) if flavor == "opensearch" else (7, 14))


def build_bodies(
    *,
    flavor: str,
    version: tuple[int, int],
    pattern: str,
    priority: int,
    data_stream: bool,
) -> tuple[Json, Json, Json]:
    """The component, custom and index template bodies for this cluster."""
    component = load_template("component")
    props = component["template"]["mappings"]["properties"]
    if not supports_match_only_text(flavor, version):
        props["message"] = {"type": "text"}
    if flavor == "opensearch":
        # OpenSearch's constant_keyword (2.14+) requires a fixed value in the mapping;
        # one template serves many data streams, so plain keyword there.
        for sub in props["data_stream"]["properties"].values():
            sub["type"] = "keyword"
    custom = load_template("custom")
    index = load_template("index_template")
    index["index_patterns"] = [p.strip() for p in pattern.split(",") if p.strip()]
    index["priority"] = priority
    if not data_stream:
        del index["data_stream"]
        props.pop("data_stream")
    return component, custom, index


def _reason(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error")
    except ValueError:
        return resp.text[:200]
    if isinstance(err, dict):
        return f"{err.get('type')}: {err.get('reason')}"
    return str(err)


def _same(existing: Json, wanted: Json) -> bool:
    # Clusters normalise bodies a little (data_stream gains defaults, settings become
    # strings); compare on what we send, as JSON text of the wanted keys.
    def norm(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return str(v) if isinstance(v, (int, float, bool)) else v

    return all(
        json.dumps(norm(existing.get(k)), sort_keys=True) == json.dumps(norm(v), sort_keys=True)
        for k, v in wanted.items()
        if k != "data_stream"
    ) and (("data_stream" in existing) == ("data_stream" in wanted))


def install(
    client: httpx.Client,
    url: str,
    component: Json,
    custom: Json,
    index: Json,
) -> list[tuple[str, str]]:
    """Install the three templates; returns ``(what, created|updated|unchanged)``."""
    done: list[tuple[str, str]] = []

    def get(path: str, key: str, inner: str) -> Json | None:
        resp = client.get(url + path)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise SetupError(f"GET {path} answered {resp.status_code}: {_reason(resp)}")
        found = resp.json().get(key) or []
        if not found:
            return None
        body: Json = found[0][inner]
        return body

    def put(path: str, body: Json) -> None:
        resp = client.put(url + path, json=body)
        if resp.status_code != 200:
            raise SetupError(f"PUT {path} answered {resp.status_code}: {_reason(resp)}")

    for name, body, always in ((COMPONENT, component, True), (CUSTOM, custom, False)):
        path = f"/_component_template/{name}"
        old = get(path, "component_templates", "component_template")
        if old is None:
            put(path, body)
            done.append((f"component template {name}", "created"))
        elif not always or _same(old, body):
            done.append((f"component template {name}", "unchanged"))
        else:
            put(path, body)
            done.append((f"component template {name}", "updated"))
    path = f"/_index_template/{INDEX_TEMPLATE}"
    old = get(path, "index_templates", "index_template")
    if old is not None and _same(old, index):
        done.append((f"index template {INDEX_TEMPLATE}", "unchanged"))
    else:
        put(path, index)
        done.append((f"index template {INDEX_TEMPLATE}", "created" if old is None else "updated"))
    return done


def stale_data_streams(client: httpx.Client, url: str, pattern: str) -> list[str]:
    """Existing data streams matching ``pattern`` still using another template (they get the
    new mappings at their next rollover)."""
    resp = client.get(url + "/_data_stream/" + pattern.replace(" ", ""))
    if resp.status_code != 200:
        return []
    return [
        str(ds["name"])
        for ds in resp.json().get("data_streams", [])
        if ds.get("template") != INDEX_TEMPLATE
    ]


@click.command("es-setup")
@click.option("--url", required=True, envvar="OBSKIT_ES_URL", help="Cluster address.")
@click.option("--username", help="Basic auth user.")
@click.option("--password-env", help="Environment variable holding the password.")
@click.option("--password-file", help="File holding the password.")
@click.option("--api-key-env", help="Environment variable holding an API key (id:key base64).")
@click.option("--api-key-file", help="File holding an API key.")
@click.option("--ca-file", help="CA bundle to verify the cluster's certificate.")
@click.option("--cert-file", help="Client certificate (mutual TLS).")
@click.option("--key-file", help="Client certificate key.")
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates (testing only).")
@click.option(
    "--opensearch", "force", flag_value="opensearch", help="Treat the cluster as OpenSearch."
)
@click.option(
    "--elasticsearch",
    "force",
    flag_value="elasticsearch",
    help="Treat the cluster as Elasticsearch (default: detect from GET /).",
)
@click.option(
    "--pattern", default="logs-*-*", show_default=True, help="Index patterns, comma-separated."
)
@click.option("--priority", default=200, show_default=True, help="Index template priority.")
@click.option(
    "--data-stream/--no-data-stream",
    default=True,
    show_default=True,
    help="Data streams (default) or plain indices (sink 'index:' mode).",
)
@click.option("--timeout", default=30.0, show_default=True, help="Seconds per request.")
def es_setup(
    url: str,
    username: str | None,
    password_env: str | None,
    password_file: str | None,
    api_key_env: str | None,
    api_key_file: str | None,
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    insecure: bool,
    force: str | None,
    pattern: str,
    priority: int,
    data_stream: bool,
    timeout: float,
) -> None:
    """Install obskit's component and index templates in Elasticsearch or OpenSearch.

    Safe to run again: unchanged templates are left alone, changed ones replaced.
    """
    url = url.rstrip("/")
    try:
        creds = Credentials.resolve(
            AuthConfig(
                username=username,
                password_env=password_env,
                password_file=password_file,
                api_key_env=api_key_env,
                api_key_file=api_key_file,
            )
        )
    except SecretError as exc:
        raise click.UsageError(str(exc)) from None
    tls = None
    if ca_file or cert_file or insecure:
        tls = TLSConfig(
            ca_file=ca_file, cert_file=cert_file, key_file=key_file, insecure_skip_verify=insecure
        )
    try:
        with make_client(timeout=timeout, tls=tls, credentials=creds) as client:
            flavor, version = detect(client, url)
            if force:
                flavor = force
            component, custom, index = build_bodies(
                flavor=flavor,
                version=version,
                pattern=pattern,
                priority=priority,
                data_stream=data_stream,
            )
            results = install(client, url, component, custom, index)
            stale = stale_data_streams(client, url, pattern) if data_stream else []
    except ClientConfigError as exc:
        raise click.UsageError(str(exc)) from None
    except SetupError as exc:
        click.echo(f"es-setup: {exc}", err=True)
        sys.exit(1)
    except httpx.HTTPError as exc:
        click.echo(f"es-setup: cannot reach {url}: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{flavor} {version[0]}.{version[1]} at {url}")
    for what, state in results:
        click.echo(f"  {what}: {state}")
    for name in stale:
        click.echo(
            f"  note: data stream {name} was created before; it uses the new mappings after "
            f"its next rollover (POST /{name}/_rollover)"
        )
