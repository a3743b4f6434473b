"""Schemathesis hooks of fuzz/run_fuzz.py (loaded through SCHEMATHESIS_HOOKS=hooks with fuzz/ on PYTHONPATH).

They only steer generation towards the servers' real logic; they never weaken a check:

* `DFS_FUZZ_CLIENT_ID` (set by run_fuzz.py when POST /register_client returned a token): half of the lock requests
  name the client the bearer token proves, so the lock table is reached instead of a 403 every time; the other half
  keep the generated (usually foreign) client id, which must be refused with 403.
* OpenAPI links, added to the loaded schema only (not to docs/openapi.yaml), let the stateful phase chain calls:
  a granted lock is renewed and released, a created directory is listed, stat-ed, moved and removed, a begun
  write is committed (with forged receipts, which must be refused).
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import strategies as st

CLIENT_ID = os.environ.get("DFS_FUZZ_CLIENT_ID")


def _ours(context) -> bool:
    return CLIENT_ID is not None and context.operation is not None


@schemathesis.hook
def flatmap_body(context, body):
    if not _ours(context) or not isinstance(body, dict) or "client_id" not in body:
        return st.just(body)
    if context.operation.path not in ("/locks", "/locks/{id}"):
        return st.just(body)
    return st.sampled_from([body, {**body, "client_id": int(CLIENT_ID)}])


@schemathesis.hook
def flatmap_query(context, query):
    if not _ours(context) or not isinstance(query, dict) or "client_id" not in query:
        return st.just(query)
    return st.sampled_from([query, {**query, "client_id": int(CLIENT_ID)}])


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
