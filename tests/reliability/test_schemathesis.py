"""Schemathesis against /api/v1/openapi.json on a live gunicorn server with the demo study:
every operation, as every role, a bounded number of generated cases each, then its stateful
phase (sequences of calls chained through the ids the answers carry, links inferred from the
document): no 5xx, every answer documented and conforming."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.reliability.seed import seed_demo_study
from tests.reliability.servers import Server, gunicorn
from tests.support.databases import scratch_database

ROLES = ("auditor", "coordinator", "therapist", "investigator", "admin")
STATEFUL_SCENARIOS = 25
EXAMPLES_PER_OPERATION = 12
# The demo's rows have small ids; aiming the path ids there reaches real participants,
# sessions, notes and events instead of only 404s (huge ids have their own tests).
PATH_ID_RANGE = (1, 40)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


@pytest.fixture(scope="module")
def demo_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    with scratch_database("postgresql", tmp) as url:
        tokens = seed_demo_study(url, tmp / "demo-instance")
        with gunicorn(url, tmp, workers=2) as server:
            yield server, tokens


def _aimed_document(document: dict[str, Any]) -> dict[str, Any]:
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
                    low, high = PATH_ID_RANGE
                    parameter["schema"] = {"type": "integer", "minimum": low, "maximum": high}
    return document


RESULTS: dict[str, dict[str, int]] = {}


def _fuzz(
    operation: Any,
    base_url: str,
    http: requests.Session,
    headers: dict[str, str],
    seen: list[str],
) -> int:
    """Run the operation's generated cases; keep the first failures; return the count."""
    count = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        nonlocal count
        count += 1
        try:
            case.call_and_validate(
                base_url=base_url, session=http, headers=headers, checks=CHECKS, timeout=30
            )
        except FailureGroup as error:
            if len(seen) < 2:
                seen.append(f"{operation.label}: {str(error)[:1500]}")

    run()
    return count


def _traceback(log: str) -> str:
    """The first traceback in the server's log and what follows it, for the failure message."""
    start = log.index("Traceback")
    return log[max(0, start - 500) : start + 4000]


@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
def test_every_operation_conforms(role: str, demo_server: tuple[Server, dict[str, str]]) -> None:
    server, tokens = demo_server
    document = requests.get(server.url + "/api/v1/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(_aimed_document(document))
    headers = {"Authorization": f"Bearer {tokens[role]}"}
    http = requests.Session()
    operations = 0
    cases = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        seen: list[str] = []
        cases += _fuzz(operation, server.url, http, headers, seen)
        failures.extend(seen)
    RESULTS[role] = {"operations": operations, "cases": cases, "failures": len(failures)}
    print(f"\nschemathesis {role}: {RESULTS[role]}")
    assert "Traceback" not in server.log_text(), _traceback(server.log_text())
    assert operations >= 30
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
def test_stateful_sequences_find_no_server_error(
    role: str, demo_server: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    """Schemathesis's own stateful phase (its runner, which knows that the server's state moves
    on between scenarios): sequences chained through the ids the answers carry."""
    server, tokens = demo_server
    document = requests.get(server.url + "/api/v1/openapi.json", timeout=10).json()
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(_aimed_document(document)))
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            str(path),
            "--url",
            server.url,
            "--phases",
            "stateful",
            "--header",
            f"Authorization: Bearer {tokens[role]}",
            "--checks",
            ",".join(check.__name__ for check in CHECKS),
            "--max-examples",
            str(STATEFUL_SCENARIOS),
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = done.stdout + done.stderr
    summary = [line for line in output.splitlines() if "Stateful" in line or "passed" in line]
    print(f"\nschemathesis stateful {role}: " + " | ".join(summary[-3:]))
    assert done.returncode == 0, output[-6000:]
    assert "Traceback" not in server.log_text(), _traceback(server.log_text())
    stateful = re.search(r"Stateful\s+Test cases:\s+(\d+) generated, (\d+) passed", output)
    assert stateful and int(stateful.group(1)) >= STATEFUL_SCENARIOS, output[-3000:]
