"""Schemathesis hooks of fuzz/run_fuzz.py (loaded through SCHEMATHESIS_HOOKS=hooks with fuzz/ on PYTHONPATH).

They only steer generation towards the servers' real logic; they never weaken a check:

* `DFS_FUZZ_CLIENT_ID` (set by run_fuzz.py when POST /register_client returned a token): in valid lock requests,
  the even generated client ids are replaced by the client the bearer token proves, so the lock table is reached
  instead of a 403 every time; the others stay (usually foreign ids, which must be refused with 403). Invalid
  (negative) cases are never touched.
* OpenAPI links, added to the loaded schema only (not to docs/openapi.yaml), let the stateful phase chain calls:
  a granted lock is renewed and released, a created directory is listed, stat-ed, moved and removed, a begun
  write is committed (with forged receipts, which must be refused).
"""

from __future__ import annotations

import os

import schemathesis

CLIENT_ID = os.environ.get("DFS_FUZZ_CLIENT_ID")


def _positive(case) -> bool:
    meta = getattr(case, "_meta", None)
    return meta is not None and not meta.generation.mode.is_negative


def _swap(value: object) -> bool:
    """Half of the generated client ids (deterministically: the even ones) become ours."""
    return isinstance(value, int) and not isinstance(value, bool) and value % 2 == 0


@schemathesis.hook
def map_case(context, case):
    # Only valid (positive) cases: a negative case's client_id must stay as generated (invalid on purpose).
    if CLIENT_ID is None or not _positive(case) or case.operation.path not in ("/locks", "/locks/{id}"):
        return case
    if isinstance(case.body, dict) and _swap(case.body.get("client_id")):
        case.body = {**case.body, "client_id": int(CLIENT_ID)}
    if isinstance(case.query, dict) and _swap(case.query.get("client_id")):
        case.query = {**case.query, "client_id": int(CLIENT_ID)}
    return case


def _link(operation_id: str, parameters: dict | None = None, body: object | None = None) -> dict:
    link: dict = {"operationId": operation_id}
    if parameters:
        link["parameters"] = parameters
    if body is not None:
        link["requestBody"] = body
    return link


LINKS = {
    ("/locks", "post", "200"): {
        "RenewLock": _link("renewLock", {"path.id": "$response.body#/lock_id"}),
        "ReleaseLock": _link("releaseLock", {"path.id": "$response.body#/lock_id",
                                             "query.client_id": "$response.body#/client_id"}),
        "ReleaseLocksOnPath": _link("releaseLocksOnPath", {"query.path": "$response.body#/path",
                                                           "query.client_id": "$response.body#/client_id"}),
        "ListLocksOnPath": _link("listLocks", {"query.path": "$response.body#/path"}),
    },
    ("/mkdir", "post", "201"): {
        "Stat": _link("stat", {"query.path": "$response.body#/path"}),
        "List": _link("list", {"query.path": "$response.body#/path"}),
        "Remove": _link("remove", {"query.path": "$response.body#/path"}),
        "Move": _link("move", body={"from": "$response.body#/path", "to": "/moved"}),
        "BeginWriteInside": _link("beginWrite", body={"path": "$response.body#/path"}),
    },
    ("/writes", "post", "201"): {
        "Commit": _link("commitWrite", body={
            "path": "$response.body#/path", "file_id": "$response.body#/file_id",
            "version": "$response.body#/version", "size": 0,
            "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "receipts": [{"file_server_id": 1, "receipt": "0.00"}]}),
        "Stat": _link("stat", {"query.path": "$response.body#/path"}),
    },
}


@schemathesis.hook
def before_load_schema(context, raw_schema):
    paths = raw_schema.get("paths", {})
    for (path, method, status), links in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is not None and "$ref" not in response:
            response.setdefault("links", {}).update(links)
