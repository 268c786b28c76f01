"""A fake Kubernetes API for tests: kmock's `KubernetesEmulator` plus what k3sc and
prefect-kubernetes' worker rely on and kmock leaves out.

Added here: `generateName`, uid, creationTimestamp, resourceVersion and generation; label and
field selectors on lists and watches; `kind` on lists; server-side apply (an apply PATCH creates
a missing object); deletion that takes a Job's pods with it; instant rollouts of Deployments and
StatefulSets; pod logs; optional RBAC from the shipped Roles (one bearer token per service
account). Every object stored is validated against the Kubernetes schema: unknown fields are
dropped as a real API server does by default, anything else invalid is refused with 422 —
so the fake cannot drift from Kubernetes. A development tool: imports kmock and
kubernetes-validate (dev dependencies); `kube_cluster` adds the Job controller and kubelet.
"""

from __future__ import annotations

import copy
import itertools
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import attrs
from kmock._internal import enums, k8s, parsing, rendering

from k3sc.sandbox import kube_schema


def _lowercase_watch(original: Any) -> Any:
    # kubernetes_asyncio sends `watch=True`; a real API server parses booleans case-insensitively.
    def guess(path: Any, method: Any, query: dict[str, str]) -> Any:
        if "watch" in query:
            query = {**query, "watch": query["watch"].lower()}
        return original(path, method, query)

    guess.__wrapped__ = original  # type: ignore[attr-defined]
    return guess


if not hasattr(parsing.guess_k8s, "__wrapped__"):
    parsing.guess_k8s = _lowercase_watch(parsing.guess_k8s)

# Which verb RBAC checks for each kmock action.
_VERBS = {
    enums.action.LIST: "list",
    enums.action.WATCH: "watch",
    enums.action.FETCH: "get",
    enums.action.CREATE: "create",
    enums.action.UPDATE: "patch",
    enums.action.DELETE: "delete",
}
_KINDS = {
    "pods": "Pod",
    "jobs": "Job",
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "events": "Event",
}
_ROLLED_OUT = {"Deployment", "StatefulSet"}
_GROUPS = {
    "jobs": ("batch", "v1"),
    "deployments": ("apps", "v1"),
    "statefulsets": ("apps", "v1"),
    "roles": ("rbac.authorization.k8s.io", "v1"),
    "rolebindings": ("rbac.authorization.k8s.io", "v1"),
    "networkpolicies": ("networking.k8s.io", "v1"),
}


@attrs.frozen
class Invalid(k8s.KubernetesError):
    status: int = 422
    reason: str = "Invalid"
    message: str = "invalid object"


@attrs.frozen
class Unavailable(k8s.KubernetesError):
    status: int = 503
    reason: str = "ServiceUnavailable"
    message: str = "unavailable"


@attrs.frozen
class Forbidden(k8s.KubernetesError):
    status: int = 403
    reason: str = "Forbidden"
    message: str = "forbidden"


def matches(labels: dict[str, str], selector: str) -> bool:
    """A Kubernetes label selector (`a=b,c!=d,e,!f,g in (x,y)`) against a label set."""
    if not selector:
        return True
    for raw in _split_terms(selector):
        term = raw.strip()
        if " in " in term or " notin " in term:
            key, op, values = term.partition(" notin " if " notin " in term else " in ")
            allowed = {v.strip() for v in values.strip().strip("()").split(",")}
            inside = labels.get(key.strip()) in allowed
            if inside != (op.strip() == "in"):
                return False
        elif "!=" in term:
            key, _, value = term.partition("!=")
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, _, value = term.partition("==" if "==" in term else "=")
            if labels.get(key.strip()) != value.strip().lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    return [*terms, current] if current else terms


def field_matches(obj: dict[str, Any], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        path, negate, value = (*term.partition("!="),) if "!=" in term else (*term.partition("="),)
        found: Any = obj
        for part in path.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if (str(found) == value) == (negate == "!="):
            return False
    return True


@attrs.define(kw_only=True)
class FakeKubernetes(k8s.KubernetesEmulator):
    """The emulator with the additions above; `tokens` maps bearer tokens to allowed
    (group, resource, verb, namespace) rules (None: no RBAC)."""

    schema_version: str = kube_schema.VERSIONS[0]
    tokens: dict[str, set[tuple[str, str, str, str]]] | None = None
    admin_tokens: set[str] = attrs.field(factory=set)
    pod_logs: dict[tuple[str, str], str] = attrs.field(factory=dict)
    warnings: list[str] = attrs.field(factory=list)
    refused: list[str] = attrs.field(factory=list)
    denied: list[str] = attrs.field(factory=list)
    # (verb, resource) → HTTP status answered instead, e.g. {("list", "jobs"): 503}.
    faults: dict[tuple[str, str], int] = attrs.field(factory=dict)
    _revision: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))

    @property
    def requests(self) -> list[rendering.Request]:
        """Every request served so far."""
        return list(self._requests)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resources.load_bundled()  # discovery of the built-in resources (kinds, scopes, verbs)

    # ------------------------------------------------------------------ request handling

    async def _handle(self, request: rendering.Request) -> Any:
        request = self._namespace_request(request)
        if request.resource is not None:
            self._authorize(request)
            if request.action is not None:
                fault = self.faults.get((_VERBS[request.action], str(request.resource.plural)))
                if fault is not None:
                    raise Unavailable(status=fault, message=f"injected {fault}")
            if request.subresource == "log" and request.method == enums.method.GET:
                return await self._serve_log(request)
            if request.action == enums.action.CREATE:
                data = copy.deepcopy(request.data)
                self._admit(data, request.namespace, creating=True)
                # Answered here: kmock matches its fallback reactions against the request as parsed.
                return await self._created(attrs.evolve(request, data=data))
            elif request.action == enums.action.UPDATE:
                request = self._admit_update(request)
                if request.action is None:
                    return await self._created(request)
                return await self._replaced(request)
            if request.resource == self._resource("namespaces") and request.name:
                return await self._namespace(request)
        return await super()._handle(request)

    def _namespace_request(self, request: rendering.Request) -> rendering.Request:
        """`/api/v1/namespaces/<name>` is the Namespace object itself (kmock reads it as a scope)."""
        match = re.fullmatch(r"/api/v1/namespaces/([^/]+)", request.url.path)
        if not match:
            return request
        actions = {
            enums.method.GET: enums.action.FETCH,
            enums.method.PATCH: enums.action.UPDATE,
            enums.method.DELETE: enums.action.DELETE,
        }
        return attrs.evolve(
            request,
            resource=self._resource("namespaces"),
            namespace=None,
            name=match.group(1),
            action=actions.get(request.method, request.action),
        )

    def _authorize(self, request: rendering.Request) -> None:
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        resource = request.resource
        discovery = resource is None or resource.plural is None  # non-resource URLs: always allowed
        if self.tokens is None or request.action is None or discovery or token in self.admin_tokens:
            return
        rules = self.tokens.get(token)
        assert resource is not None
        plural = f"{resource.plural}/{request.subresource}" if request.subresource else str(resource.plural)
        verb = "get" if request.subresource == "log" else _VERBS[request.action]
        wanted = (str(resource.group), plural, verb, request.namespace or "")
        if rules is None or wanted not in rules:
            self.denied.append(f"{verb} {plural} in {request.namespace or '(all namespaces)'}")
            raise Forbidden(message=f"{verb} {plural} is forbidden")

    def _admit(self, obj: dict[str, Any], namespace: str | None, *, creating: bool) -> None:
        """Fill what the API server fills, then validate (drop unknown fields; refuse the invalid)."""
        metadata = obj.setdefault("metadata", {})
        if creating and not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = f"{metadata['generateName']}{uuid.uuid4().hex[:5]}"
        if namespace and obj.get("kind") not in ("Namespace",):
            metadata.setdefault("namespace", namespace)
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", _now())
        metadata["resourceVersion"] = str(next(self._revision))
        metadata["generation"] = int(metadata.get("generation") or 0) + 1
        if obj.get("kind") == "Secret" and "stringData" in obj:
            # The API server stores stringData as base64 data and never returns it.
            import base64

            strings = obj.pop("stringData") or {}
            encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in strings.items()}
            obj["data"] = {**(obj.get("data") or {}), **encoded}
        if obj.get("kind") in _ROLLED_OUT:
            replicas = (obj.get("spec") or {}).get("replicas", 1)
            obj["status"] = {
                "observedGeneration": metadata["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
        self.validate(obj)

    def validate(self, obj: dict[str, Any]) -> None:
        """Drop unknown fields (recorded as warnings) and refuse anything else invalid."""
        if obj.get("kind") in (None, "Status"):
            return
        for path, fields in kube_schema.unknown_fields(obj, self.schema_version):
            parent: Any = obj
            for part in path:
                parent = parent[part]
            for name in fields:
                parent.pop(name, None)
                where = "/".join(str(p) for p in (*path, name))
                self.warnings.append(f"{obj['kind']}/{obj['metadata'].get('name')}: unknown field {where}")
        problems = kube_schema.errors(obj, self.schema_version)
        if problems:
            self.refused.append(f"{obj['kind']}/{obj['metadata'].get('name')}: {problems}")
            raise Invalid(message="; ".join(problems))

    def _admit_update(self, request: rendering.Request) -> rendering.Request:
        key: Any = (request.resource, request.namespace, request.name)
        objects: Any = self._objects
        exists = key in objects and not objects[key].deleted
        apply = "apply-patch" in (request.headers.get("Content-Type") or "")
        data = copy.deepcopy(request.data)
        if apply and not exists:
            # Server-side apply creates what does not exist yet (answered in _handle).
            self._admit(data, request.namespace, creating=True)
            return attrs.evolve(request, data=data, action=None)
        if exists:
            merged = _merge(objects[key].raw, data)
            self._admit(merged, request.namespace, creating=False)
            # Stored as a full replacement: what validation pruned must not come back by merging.
            return attrs.evolve(request, data=_replacement(objects[key].raw, merged))
        raise k8s.KubernetesObjectNotFoundError()

    async def _created(self, request: rendering.Request) -> Any:
        import aiohttp.web

        resource: Any = request.resource
        namespace = request.namespace or request.data["metadata"].get("namespace")
        key: Any = (resource, namespace, request.data["metadata"]["name"])
        async with self._lock:
            objects: Any = self._objects
            if key in objects and not objects[key].deleted:
                raise k8s.KubernetesObjectConflictError()
            if key in objects:
                objects[key].create(request.data)
            else:
                objects[key] = request.data
            raw = objects[key].raw
            await self._buses[resource].put({"type": "ADDED", "object": raw})
        return aiohttp.web.json_response(raw, status=201)

    async def _replaced(self, request: rendering.Request) -> Any:
        import aiohttp.web

        resource: Any = request.resource
        key: Any = (resource, request.namespace, request.name)
        async with self._lock:
            objects: Any = self._objects
            objects[key].patch(request.data)
            raw = objects[key].raw
            await self._buses[resource].put({"type": "MODIFIED", "object": raw})
        return aiohttp.web.json_response(raw)

    async def _namespace(self, request: rendering.Request) -> Any:
        """GET and DELETE of a Namespace by name (kmock routes these paths as a scope)."""
        import aiohttp.web

        key: Any = (request.resource, None, request.name)
        objects: Any = self._objects
        if key not in objects or objects[key].deleted:
            return await self._render_error(k8s.KubernetesObjectNotFoundError())
        raw = objects[key].raw
        if request.action == enums.action.DELETE:
            await self.discard("namespaces", None, str(request.name))
        return aiohttp.web.json_response(raw)

    async def _serve_log(self, request: rendering.Request) -> Any:
        import aiohttp.web

        key = (request.namespace or "", request.name or "")
        objects: Any = self._objects
        pod_key = (self._resource("pods"), request.namespace, request.name)
        pod = objects[pod_key] if pod_key in objects else None  # noqa: SIM401 (no .get)
        if pod is None or pod.deleted:
            return await self._render_error(k8s.KubernetesObjectNotFoundError())
        text = self.pod_logs.get(key, "")
        tail = request.params.get("tailLines")
        if tail:
            text = "".join(text.splitlines(keepends=True)[-int(tail) :])
        return aiohttp.web.Response(text=text, content_type="text/plain")

    async def _serve_list(self, request: rendering.Request) -> Any:
        payload: Any = await super()._serve_list(request)
        selector = request.params.get("labelSelector", "")
        fields = request.params.get("fieldSelector", "")
        payload["items"] = [
            item
            for item in payload["items"]
            if matches((item.get("metadata") or {}).get("labels") or {}, selector)
            and field_matches(item, fields)
        ]
        resource = request.resource
        assert resource is not None
        kind = _KINDS.get(str(resource.plural), str(resource.plural).title())
        payload["kind"] = f"{kind}List"
        payload["apiVersion"] = f"{resource.group}/{resource.version}".lstrip("/")
        payload["metadata"] = {"resourceVersion": str(next(self._revision))}
        return payload

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        selector = request.params.get("labelSelector", "")
        fields = request.params.get("fieldSelector", "")
        async for event in super()._serve_watch(request):
            if isinstance(event, dict):
                obj = event.get("object") or {}
                if not (
                    matches((obj.get("metadata") or {}).get("labels") or {}, selector)
                    and field_matches(obj, fields)
                ):
                    continue
            yield event

    # ------------------------------------------------------------------ direct access (controllers, tests)

    def _resource(self, plural: str) -> Any:
        from kmock._internal import references

        group, version = _GROUPS.get(plural, ("", "v1"))
        return references.resource(group=group, version=version, plural=plural)

    def stored(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Live objects of a resource (all namespaces unless one is named)."""
        resource = self._resource(plural)
        return [
            obj.raw
            for (res, ns, _), obj in self._objects.items()
            if res == resource and not obj.deleted and (namespace is None or ns == namespace)
        ]

    async def store(self, plural: str, obj: dict[str, Any]) -> None:
        """Store or replace an object as a controller would, with a watch event."""
        resource = self._resource(plural)
        metadata = obj["metadata"]
        key = (resource, metadata.get("namespace"), metadata["name"])
        async with self._lock:
            new = key not in self._objects or self._objects[key].deleted
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", _now())
            metadata["resourceVersion"] = str(next(self._revision))
            self.validate(obj)
            if key not in self._objects:
                self._objects[key] = obj
            elif self._objects[key].deleted:
                self._objects[key].create(obj)
            else:
                self._objects[key].patch(_replacement(self._objects[key].raw, obj))
            raw = self._objects[key].raw
            await self._buses[resource].put({"type": "ADDED" if new else "MODIFIED", "object": raw})

    async def discard(self, plural: str, namespace: str | None, name: str) -> None:
        resource = self._resource(plural)
        key = (resource, namespace, name)
        async with self._lock:
            if key in self._objects and not self._objects[key].deleted:
                raw = self._objects[key].raw
                self._objects[key].delete()
                await self._buses[resource].put({"type": "DELETED", "object": raw})


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _replacement(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that turns `old` into `new` (keys missing from `new` become None)."""
    patch: dict[str, Any] = {}
    for key in set(old) | set(new):
        if key not in new:
            patch[key] = None
        elif isinstance(old.get(key), dict) and isinstance(new[key], dict):
            patch[key] = _replacement(old[key], new[key])
        else:
            patch[key] = new[key]
    return patch


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def role_rules(objects: Iterable[dict[str, Any]]) -> dict[str, set[tuple[str, str, str, str]]]:
    """Per service account (`namespace/name`), the (group, resource, verb, namespace) its Roles grant."""
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "Role"}
    granted: dict[str, set[tuple[str, str, str, str]]] = {}
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        namespace = binding["metadata"]["namespace"]
        role = roles[(namespace, binding["roleRef"]["name"])]
        for subject in binding["subjects"]:
            account = f"{subject.get('namespace', namespace)}/{subject['name']}"
            rules = granted.setdefault(account, set())
            for rule in role["rules"]:
                for group, resource, verb in itertools.product(
                    rule["apiGroups"], rule["resources"], rule["verbs"]
                ):
                    rules.add((group, resource, verb, namespace))
    return granted


async def serve(fake: FakeKubernetes, host: str = "127.0.0.1", port: int | None = None) -> Any:
    """Start an HTTP server for `fake`; returns the kmock Server (enter/exit it yourself)."""
    from kmock._internal import apps

    server = apps.Server(fake, host=host, port=port)
    await server.__aenter__()
    return server


def kubeconfig(url: str, token: str, namespace: str) -> dict[str, Any]:
    """A kubeconfig for the fake (plain HTTP, bearer token)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url.rstrip("/")}}],
        "users": [{"name": "fake", "user": {"token": token}}],
        "contexts": [
            {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}
        ],
        "current-context": "fake",
    }
