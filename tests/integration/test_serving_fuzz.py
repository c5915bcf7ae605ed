"""Property-based fuzzing of the server's HTTP API from its own OpenAPI schema: never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.integration.test_serving import Server, start_server

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 60


@pytest.fixture(scope="module")
def fuzzed_server(yolox_package: Path) -> Iterator[Server]:
    process, served = start_server(
        yolox_package, "--allow-anonymous", "--rate-per-s", "1000", "--burst", "1000"
    )
    yield served
    process.terminate()
    process.wait(timeout=30)


def test_no_generated_request_makes_the_server_fail(fuzzed_server: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json")
    # Unloading the model mid-run would make every later request a legitimate 503/404.
    operations = [r.ok() for r in schema.exclude(path_regex=r"/(load|unload)$").get_all_operations()]
    assert any(op.path == "/v2/models/{model_name}/infer" for op in operations)
    for operation in operations:

        @given(case=operation.as_strategy())
        # The same cases every CI run; turn derandomize off (and raise max_examples) to explore.
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error], timeout=30)

        no_server_error()
