"""The Istio overlay and the gateway's discovery RBAC, rendered with ``kubectl kustomize``.

The Istio objects are validated against the Istio CRD schemas vendored in
deploy/k8s/schemas/istio (offline; their source and version are in the README there),
refusing undeclared fields as the API server's strict field validation does.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from tests.deploy.test_manifests import (
    GATEWAY,
    GLOBAL,
    K8S,
    NAMESPACE,
    OVERLAYS,
    REGIONAL,
    REGIONS,
    Doc,
    Manifests,
    _render,
)

SCHEMAS = K8S / "schemas" / "istio"
ISTIO_KINDS = {
    ("security.istio.io/v1beta1", "PeerAuthentication"),
    ("security.istio.io/v1beta1", "AuthorizationPolicy"),
    ("networking.istio.io/v1beta1", "DestinationRule"),
}
#: ObjectMeta as far as these manifests use it (the vendored schemas reference it).
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


def _strict(schema: Any) -> Any:
    """Refuse undeclared fields wherever the schema declares some and allows no others."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    return schema


def _schema(api_version: str, kind: str) -> dict[str, Any]:
    group, version = api_version.split("/")
    raw = json.loads((SCHEMAS / f"{group}_{version}_{kind}.json").read_text())
    raw = copy.deepcopy(raw)
    raw["properties"]["metadata"] = OBJECT_META
    return _strict(raw)  # type: ignore[no-any-return]


def _validate(doc: Doc) -> list[str]:
    schema = _schema(doc["apiVersion"], doc["kind"])
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, e.path))}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


@pytest.fixture(scope="module")
def istio() -> Manifests:
    return Manifests("istio", _render(K8S / "overlays" / "istio"))


def test_the_istio_objects_pass_the_istio_crd_schemas(istio: Manifests) -> None:
    custom = [d for d in istio.docs if "istio.io/" in d["apiVersion"]]
    assert {(d["apiVersion"], d["kind"]) for d in custom} == ISTIO_KINDS
    errors = [error for doc in custom for error in _validate(doc)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            lambda d: d["spec"]["trafficPolicy"].update(outlierDetecton={}),
            "Additional properties",
            id="typo",
        ),
        pytest.param(
            lambda d: d["spec"]["trafficPolicy"]["outlierDetection"].update(
                consecutive5xxErrors="five"
            ),
            "is not of type",
            id="type",
        ),
        pytest.param(
            lambda d: d["spec"]["trafficPolicy"]["tls"].update(mode="MUTUAL_ISTIO"),
            "is not one of",
            id="enum",
        ),
    ],
)
def test_the_schema_check_catches_a_bad_destination_rule(
    istio: Manifests, change: Any, message: str
) -> None:
    doc = copy.deepcopy(istio.of("DestinationRule")[0])
    change(doc)
    errors = _validate(doc)
    assert any(message in e for e in errors), errors


def test_the_namespace_gets_sidecars(istio: Manifests) -> None:
    namespace = istio.get("Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
    # Still the restricted profile: the overlay asks for Istio's CNI agent instead.
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_mutual_tls_is_strict_with_only_the_gateway_public_port_open(istio: Manifests) -> None:
    policies = istio.named("PeerAuthentication")
    default = policies["default"]
    assert "selector" not in default["spec"]
    assert default["spec"]["mtls"]["mode"] == "STRICT"
    others = [p for name, p in policies.items() if name != "default"]
    assert [p["spec"]["selector"]["matchLabels"] for p in others] == [
        {"app.kubernetes.io/name": GATEWAY}
    ]
    gateway = others[0]["spec"]
    assert gateway["mtls"]["mode"] == "STRICT"
    assert gateway["portLevelMtls"] == {"7001": {"mode": "PERMISSIVE"}}
    port = istio.get("Service", GATEWAY)["spec"]["ports"][0]
    assert port["port"] == 7001


def test_every_pool_service_has_outlier_detection(istio: Manifests) -> None:
    rules = istio.named("DestinationRule")
    expected = {*GLOBAL, *(f"{s}-{r}" for s in REGIONAL for r in REGIONS)}
    assert set(rules) == expected
    services = istio.named("Service")
    for name, rule in rules.items():
        assert rule["spec"]["host"] in services, name
        outlier = rule["spec"]["trafficPolicy"]["outlierDetection"]
        assert outlier["consecutive5xxErrors"] >= 1
        assert 0 < outlier["maxEjectionPercent"] < 100  # never eject a whole pool
        assert rule["spec"]["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"


def test_the_gateway_is_the_only_way_in(istio: Manifests) -> None:
    policies = istio.named("AuthorizationPolicy")
    assert all(p["spec"].get("action", "ALLOW") == "ALLOW" for p in policies.values())
    outside: list[tuple[str, Doc]] = []
    for name, policy in policies.items():
        for rule in policy["spec"]["rules"]:
            sources = [f["source"] for f in rule.get("from", [])]
            namespaces = {n for s in sources for n in s.get("namespaces", [])}
            if not sources or namespaces - {NAMESPACE}:
                outside.append((name, {**rule, "selector": policy["spec"].get("selector")}))
    # From outside the namespace: anyone to the gateway's public port only...
    public = [(n, r) for n, r in outside if not r.get("from")]
    assert len(public) == 1
    name, rule = public[0]
    assert rule["selector"] == {"matchLabels": {"app.kubernetes.io/name": GATEWAY}}
    assert rule["to"] == [{"operation": {"ports": ["7001"]}}]
    # ...and Prometheus to metrics (GET /metrics, the gateway's admin port).
    for name, rule in outside:
        if rule.get("from"):
            sources = [f["source"] for f in rule["from"]]
            assert sources == [{"namespaces": ["monitoring"]}], name
            operations = [t["operation"] for t in rule["to"]]
            assert operations in (
                [{"methods": ["GET"], "paths": ["/metrics"]}],
                [{"ports": ["7080"]}],
            ), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_may_list_and_watch_endpointslices_and_nothing_else(overlay: str) -> None:
    m = Manifests(overlay, _render(K8S / "overlays" / overlay))
    account = m.get("ServiceAccount", GATEWAY)
    assert account["metadata"]["namespace"] == NAMESPACE
    role = m.get("Role", "gateway-api-discovery")
    assert role["rules"] == [
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    binding = m.get("RoleBinding", "gateway-api-discovery")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "gateway-api-discovery",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": GATEWAY, "namespace": NAMESPACE}
    ]
    assert not m.of("ClusterRole")
    assert not m.of("ClusterRoleBinding")
    for deployment in m.of("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        if deployment["metadata"]["name"] == GATEWAY:
            assert spec["serviceAccountName"] == GATEWAY
            assert spec["automountServiceAccountToken"] is True
        else:
            # No other pod gets an API token.
            assert spec.get("serviceAccountName", "default") == "default"
            assert spec["automountServiceAccountToken"] is False
