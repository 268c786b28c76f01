"""Every schema error of a Kubernetes object, from the OpenAPI-derived JSON schemas that
kubernetes-validate ships (offline, v1.25 to v1.37, strict variants reject unknown fields).

kubernetes-validate's own `validate` stops at the first error; tests here must show that
*only* the expected errors exist, so this walks all of them with the same schemas. A
development dependency: only tests and the fake Kubernetes API import this module.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

VERSIONS = ("1.33.0", "1.37.0")


@cache
def _validator(kind: str, api_version: str, version: str, strict: bool) -> Any:
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"v{version}-local" + ("-strict" if strict else "")
    schema = utils.schema_contents(f"kubernetes-json-schema/{folder}/{kind.lower()}-{group}.json", version)
    definitions = utils.schema_contents(f"kubernetes-json-schema/{folder}/_definitions.json", version)
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def errors(obj: dict[str, Any], version: str = VERSIONS[0], *, strict: bool = True) -> list[str]:
    """`path: message` for every schema violation of `obj` (empty when valid)."""
    validator = _validator(str(obj.get("kind")), str(obj.get("apiVersion")), version, strict)
    found = []
    for error in validator.iter_errors(obj):
        path = "/".join(str(p) for p in error.absolute_path)
        found.append(f"/{path}: {error.message}")
    return sorted(found)


def unknown_fields(
    obj: dict[str, Any], version: str = VERSIONS[0]
) -> list[tuple[tuple[str | int, ...], list[str]]]:
    """(path, field names) of every field the strict schema does not know, as an API server in
    its default field validation mode drops them (with a warning) instead of failing."""
    validator = _validator(str(obj.get("kind")), str(obj.get("apiVersion")), version, True)
    found = []
    for error in validator.iter_errors(obj):
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            found.append((tuple(error.absolute_path), extra))
    return found
