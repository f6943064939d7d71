"""Schema-driven fuzzing of /api/v1 with Schemathesis, from the service's own OpenAPI document:
for every operation, valid and invalid requests (with an API key) must never get a 5xx, every
answer must match the documented status codes and schemas, and invalid data must be refused.

Short and deterministic by default (CI). A long run, with fresh randomness each time:
    ACQUISITION_FUZZ_EXAMPLES=1000 ACQUISITION_FUZZ_RANDOM=1 .venv/bin/pytest tests/test_fuzz_api.py
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as REGISTRY
from schemathesis.checks import load_all_checks
from starlette.testclient import TestClient

from acquisition.config import Settings
from acquisition.db import Database
from acquisition.web.app import create_app
from tests.conftest import BASE_URL
from tests.factories import make_channel, make_link

EXAMPLES = int(os.environ.get("ACQUISITION_FUZZ_EXAMPLES", "25"))
RANDOM = os.environ.get("ACQUISITION_FUZZ_RANDOM", "") not in ("", "0")
RUN = settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    # No shrinking in CI: the first failing request is reported as it was sent.
    phases=[Phase.explicit, Phase.generate] if not RANDOM else list(Phase),
)


# Checks on the answer alone. Not positive_data_acceptance: a schema cannot say "an existing
# channel" or "printable text", so the API rightly refuses some schema-valid requests with a
# 422 naming the field. Checks that send requests of their own (ignored_auth,
# unsupported_method, the stateful ones) would use a network client, not this in-process one:
# tests/web/test_bad_input.py covers missing and wrong API keys on every route instead.
load_all_checks()
CHECKS = [
    REGISTRY.get_one(name)
    for name in (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
    )
]


def send(client: TestClient, case: schemathesis.Case) -> Any:
    kwargs = case.as_transport_kwargs(base_url=f"{BASE_URL}/api/v1")
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        if isinstance(data, dict):
            body["data"] = data
        else:
            body["content"] = data.encode() if isinstance(data, str) else data
    if kwargs.get("files"):
        # Form fields may come as numbers; on the wire every part is text or bytes.
        body["files"] = [
            (name, (filename, value if isinstance(value, str | bytes) else str(value)))
            for name, (filename, value, *_rest) in kwargs["files"]
        ]
    return client.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        **body,
    )


def fuzz(
    client: TestClient,
    operation: Any,
    strategies: list[Any],
    tried: Counter[str],
    failures: list[str],
) -> Any:
    @given(case=st.one_of(strategies))
    @RUN
    def run(case: schemathesis.Case) -> None:
        response = send(client, case)
        tried[operation.label] += 1
        response.request.read()  # a multipart body is a stream until read
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as error:
            failures.append(f"{operation.label}: {error}")
            raise

    return run


def test_the_api_survives_its_own_schema_fuzzed(
    settings: Settings, db: Database, api_key: str, tmp_path: Path
) -> None:
    channel = make_channel(db)
    link = make_link(db, [channel.id], source="fuzz")
    roomy = replace(settings, spool_dir=str(tmp_path / "spool"), rate_limit_api="1000000/minute")
    with TestClient(create_app(roomy, db), base_url=BASE_URL, follow_redirects=False) as client:
        # The key goes into the generated cases, so negative cases can drop or mangle it.
        auth = {"Authorization": f"Bearer {api_key}"}
        schema = schemathesis.openapi.from_dict(client.get("/api/v1/openapi.json").json())
        known = {"code": link.code, "id": channel.id}
        tried: Counter[str] = Counter()
        failures: list[str] = []
        operations = [result.ok() for result in schema.get_all_operations()]
        for operation in operations:
            names = {p.name for p in operation.path_parameters}
            strategies = [
                operation.as_strategy(generation_mode=GenerationMode.POSITIVE, headers=auth),
                operation.as_strategy(generation_mode=GenerationMode.NEGATIVE, headers=auth),
            ]
            if names <= set(known) and names:
                fixed = {name: known[name] for name in names}
                strategies.append(
                    operation.as_strategy(
                        generation_mode=GenerationMode.POSITIVE, path_parameters=fixed, headers=auth
                    )
                )

            run = fuzz(client, operation, strategies, tried, failures)
            try:
                run()
            except (Exception, BaseExceptionGroup) as error:  # collect every operation's problem
                failures.append(f"{operation.label}: {type(error).__name__}: {error}"[:2000])
    print(f"\nschemathesis: {len(operations)} operations, {sum(tried.values())} requests")
    for label, n in sorted(tried.items()):
        print(f"  {n:5}  {label}")
    assert not failures, "\n\n".join(dict.fromkeys(failures))
