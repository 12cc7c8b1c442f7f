"""Schemathesis against the local stack's API, from the published OpenAPI description: generated
requests (valid and invalid) get documented statuses and bodies, never a server error."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from stsvend.checkout.openapi import build
from stsvend.client.signing import PROOF_HEADER, request_binding
from tests.conftest import record_output, record_vended
from tests.e2e.conftest import Api

# Undeclared methods (TRACE, ...) never reach the app: API Gateway answers them itself, while chalice
# local's HTTP server says 501. They are not the service's behaviour, so they are not generated.
CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"unexpected-methods": []}}})
schema = schemathesis.openapi.from_dict(build(), config=CONFIG)


class ProvingSession(requests.Session):
    """Adds jenkins' identity proof to each request as sent, bound to its method, path and body."""

    def __init__(self, api: Api) -> None:
        super().__init__()
        self.api = api

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        body = request.body.encode() if isinstance(request.body, str) else (request.body or b"")
        request.headers[PROOF_HEADER] = self.api.proof(
            "jenkins", binding=request_binding(request.method or "", urlsplit(request.url).path, body)
        )
        return super().send(request, **kwargs)


@pytest.mark.e2e
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_description(case: schemathesis.Case, api: Api) -> None:
    with ProvingSession(api) as session:
        response = case.call_and_validate(
            base_url=api.state.api_url,
            session=session,
            # The proof is added to every request, so schemathesis' "request without auth" probe
            # would still carry it; missing and bad proofs are tested in test_denials.py and
            # test_sts_proof.py.
            excluded_checks=[schemathesis.checks.ignored_auth],
        )
    assert response.status_code < 500 or response.status_code in (502, 503)
    if response.status_code == 200 and case.method == "POST":
        record_vended(response.json())
    else:
        record_output(response.text)
