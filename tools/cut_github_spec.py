"""Cut the GitHub contract material k3sc vendors from the npm packages that carry it.

CI must not need Node or a 385 MB npm package, so this script is run by hand when the
fake GitHub grows an endpoint or the spec is bumped. It reads the tarballs that
`npm pack @octokit/openapi@<v>` and `npm pack @octokit/fixtures@<v>` leave behind and
writes:

* tests/data/github/api.github.com.subset.json - the operations the fake serves, plus
  every component they reference (transitively), stamped with the source versions;
* k3sc/sandbox/data/github_examples.json - GitHub's own example bodies the fake renders
  its responses from (shipped in the wheel: `k3sc up --sandbox` uses the fake at run time);
* tests/data/github/fixtures/<scenario>/normalized-fixture.json - recorded real traffic
  from @octokit/fixtures, plus its licence.

Usage (from the repo root, in a scratch dir outside the repo for the tarballs):

    (cd /tmp/gh && npm pack @octokit/openapi@23.0.2 @octokit/fixtures@23.1.2)
    uv run python tools/cut_github_spec.py /tmp/gh/octokit-openapi-23.0.2.tgz \
        --fixtures /tmp/gh/octokit-fixtures-23.1.2.tgz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SUBSET_OUT = REPO / "tests" / "data" / "github" / "api.github.com.subset.json"
EXAMPLES_OUT = REPO / "k3sc" / "sandbox" / "data" / "github_examples.json"
FIXTURES_OUT = REPO / "tests" / "data" / "github" / "fixtures"
SPEC_MEMBER = "package/generated/api.github.com.json"

# Every (method, path) the fake serves; k3sc.sandbox.github_api.ROUTES must match this
# list exactly (a contract test checks both directions).
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("get", "/rate_limit"),
    ("get", "/user"),
    ("get", "/repos/{owner}/{repo}"),
    ("get", "/repos/{owner}/{repo}/installation"),
    ("post", "/app/installations/{installation_id}/access_tokens"),
    ("get", "/repos/{owner}/{repo}/issues"),
    ("post", "/repos/{owner}/{repo}/issues"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}"),
    ("patch", "/repos/{owner}/{repo}/issues/{issue_number}"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("put", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("delete", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/pulls"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("get", "/repos/{owner}/{repo}/branches/{branch}"),
)

# The example bodies the fake starts every response from (components/examples names).
EXAMPLES: tuple[str, ...] = (
    "issue",
    "issue-comment",
    "label-items",
    "pull-request",
    "pull-request-simple-items",
    "full-repository-default-response",
    "rate-limit-overview",
    "branch-get",
    "installation",
    "installation-token",
    "private-user-response-with-public-and-private-profile-information",
)

# @octokit/fixtures scenarios worth replaying against our client code.
SCENARIOS: tuple[str, ...] = ("paginate-issues", "add-labels-to-issue", "labels", "errors", "get-repository")


# Places where GitHub's description contradicts what api.github.com sends, patched in the subset:
# (JSON pointer, key, value, why). Keep each one justified; tests/data/github/README.md lists them.
SPEC_FIXES: tuple[tuple[str, str, Any, str], ...] = (
    (
        "/components/schemas/pull-request-simple/properties/labels/items/properties/description",
        "nullable",
        True,
        "a label without a description is sent as null in pull request lists too (it is nullable in "
        "`label` and in `pull-request`, and in the 2026-03-10 description githubkit's models use)",
    ),
)


def _apply_fixes(subset: dict[str, Any]) -> list[str]:
    applied = []
    for pointer, key, value, why in SPEC_FIXES:
        node = subset
        for part in pointer.strip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        node[key] = value
        applied.append(f"{pointer}: {key}={json.dumps(value)} ({why})")
    return applied


def _refs(node: Any) -> Iterator[str]:
    """Yield every local `$ref` target below `node`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _allow_null_in_nullable_enums(node: Any) -> int:
    """Add `null` to enums of nullable schemas; return how many were changed.

    GitHub's description marks e.g. `issue.state_reason` as `nullable: true` with an enum that
    lacks null, and api.github.com sends `null` there. Under the OAS 3.0.3 clarification
    openapi-core then rejects GitHub's own responses, so the subset spells the null out.
    """
    changed = 0
    if isinstance(node, dict):
        enum = node.get("enum")
        if node.get("nullable") is True and isinstance(enum, list) and None not in enum:
            enum.append(None)
            changed += 1
        for value in node.values():
            changed += _allow_null_in_nullable_enums(value)
    elif isinstance(node, list):
        for value in node:
            changed += _allow_null_in_nullable_enums(value)
    return changed


def _allow_null_in_nullable_unions(node: Any) -> int:
    """Give nullable oneOf/anyOf schemas (no `type` of their own) an explicit null branch.

    E.g. `commit.author` is `nullable: true, oneOf: [simple-user, empty-object]` and GitHub sends
    null for commits by unknown emails; openapi-core applies `nullable` only next to a `type`,
    so without the branch it rejects the null GitHub really sends.
    """
    changed = 0
    if isinstance(node, dict):
        for key in ("oneOf", "anyOf"):
            union = node.get(key)
            if node.get("nullable") is True and "type" not in node and isinstance(union, list):
                union.append({"nullable": True, "enum": [None]})
                changed += 1
        for value in node.values():
            changed += _allow_null_in_nullable_unions(value)
    elif isinstance(node, list):
        for value in node:
            changed += _allow_null_in_nullable_unions(value)
    return changed


def cut_subset(spec: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Any]:
    """Return the spec restricted to OPERATIONS and the components they reach."""
    paths: dict[str, Any] = {}
    for method, path in OPERATIONS:
        item = spec["paths"][path]
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k == "parameters"})
        kept[method] = item[method]

    components: dict[str, dict[str, Any]] = {}
    pending = list(_refs(paths))
    while pending:
        ref = pending.pop()
        _, _, kind, name = ref.split("/", 3)
        if name in components.get(kind, {}):
            continue
        target = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = target
        pending.extend(_refs(target))

    subset = {
        "openapi": spec["openapi"],
        "info": {**spec["info"], "x-k3sc-cut": provenance},
        "servers": spec["servers"],
        "paths": paths,
        "components": {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())},
    }
    # Work on a copy so the example bodies cut from `spec` stay verbatim.
    subset = json.loads(json.dumps(subset))
    stamp = subset["info"]["x-k3sc-cut"]
    stamp["nullable_enums_given_null"] = _allow_null_in_nullable_enums(subset)
    stamp["nullable_unions_given_null"] = _allow_null_in_nullable_unions(subset)
    stamp["fixes"] = _apply_fixes(subset)
    return subset


def cut_examples(spec: dict[str, Any], provenance: dict[str, str]) -> dict[str, Any]:
    """Return the example bodies the fake uses, verbatim."""
    examples = spec["components"]["examples"]
    return {"source": provenance, "examples": {name: examples[name]["value"] for name in EXAMPLES}}


def vendor_fixtures(tgz: Path) -> list[str]:
    """Copy the chosen @octokit/fixtures scenarios and the licence into FIXTURES_OUT."""
    written = []
    with tarfile.open(tgz) as tar:
        version = json.load(_member(tar, "package/package.json"))["version"]
        FIXTURES_OUT.mkdir(parents=True, exist_ok=True)
        (FIXTURES_OUT / "LICENSE.md").write_bytes(_member(tar, "package/LICENSE.md").read())
        for scenario in SCENARIOS:
            member = f"package/scenarios/api.github.com/{scenario}/normalized-fixture.json"
            out = FIXTURES_OUT / scenario / "normalized-fixture.json"
            out.parent.mkdir(exist_ok=True)
            out.write_bytes(_member(tar, member).read())
            written.append(scenario)
        (FIXTURES_OUT / "VERSION").write_text(f"@octokit/fixtures {version}\n")
    return written


def _member(tar: tarfile.TarFile, name: str) -> Any:
    handle = tar.extractfile(name)
    if handle is None:
        raise SystemExit(f"{name} missing from the tarball")
    return handle


def _dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("openapi_tgz", type=Path, help="tarball from `npm pack @octokit/openapi`")
    parser.add_argument("--fixtures", type=Path, help="tarball from `npm pack @octokit/fixtures`")
    args = parser.parse_args()

    with tarfile.open(args.openapi_tgz) as tar:
        raw = _member(tar, SPEC_MEMBER).read()
        package = json.load(_member(tar, "package/package.json"))
    spec = json.loads(raw)
    provenance = {
        "package": f"{package['name']}@{package['version']}",
        "file": SPEC_MEMBER.removeprefix("package/"),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "info.version": spec["info"]["version"],
    }
    subset = cut_subset(spec, dict(provenance))
    _dump(SUBSET_OUT, subset)
    _dump(EXAMPLES_OUT, cut_examples(spec, provenance))
    print(f"spec {provenance['package']} (info.version {provenance['info.version']})")
    print(
        f"  {SUBSET_OUT.relative_to(REPO)}: {len(OPERATIONS)} operations, "
        + ", ".join(f"{len(v)} {k}" for k, v in subset["components"].items())
    )
    print(f"  {EXAMPLES_OUT.relative_to(REPO)}: {len(EXAMPLES)} examples")
    if args.fixtures:
        print(f"  {FIXTURES_OUT.relative_to(REPO)}: " + ", ".join(vendor_fixtures(args.fixtures)))


if __name__ == "__main__":
    main()
