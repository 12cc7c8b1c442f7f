"""The rehearsal tests' AWS emulator: moto in server mode, in a process of its own, with the one step
moto 5.2.5 cannot do filled in here (and only here; nothing deployed is changed to suit it).

    python -m tests.deploy_emulator   # prints the URL on stdout, serves until stdin closes

The gap: API Gateway's `ImportRestApi`/`PutRestApi` in moto read OpenAPI 3 only and answer a
Swagger 2.0 document, which is what Chalice sends, with a 500. API Gateway itself imports Swagger
2.0 and maps a method's security requirement to its authorization type: a scheme with
`x-amazon-apigateway-authtype: awsSigv4` becomes `AWS_IAM` ("x-amazon-apigateway-authtype
property" in the API Gateway developer guide). The patch hands moto the same paths under an
OpenAPI 3 version field and then sets each method's authorization type by that mapping, so the
test reads back what API Gateway would hold, from the document Chalice really sent.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from moto.apigateway.models import APIGatewayBackend
from moto.server import ThreadedMotoServer

_put_rest_api = APIGatewayBackend.put_rest_api


def _authorization(api_doc: dict[str, Any], method_doc: dict[str, Any]) -> str:
    schemes = api_doc.get("securityDefinitions", {})
    for requirement in method_doc.get("security", []):
        for name in requirement:
            scheme = schemes.get(name, {})
            if scheme.get("x-amazon-apigateway-authtype") == "awsSigv4":
                return "AWS_IAM"
            if scheme.get("x-amazon-apigateway-authorizer"):
                return "CUSTOM"
    return "NONE"


def put_rest_api(
    self: APIGatewayBackend, function_id: str, api_doc: dict[str, Any], fail_on_warnings: bool,
    mode: str = "merge",
) -> Any:
    if "swagger" not in api_doc:
        return _put_rest_api(self, function_id, api_doc, fail_on_warnings, mode)
    as_openapi = copy.deepcopy(api_doc)
    del as_openapi["swagger"]
    as_openapi["openapi"] = "3.0.1"
    api = _put_rest_api(self, function_id, as_openapi, False, mode)
    for path, resource_doc in api_doc.get("paths", {}).items():
        resource = api.get_resource_for_path(path)
        for method_type, method_doc in resource_doc.items():
            method = resource.resource_methods[method_type.upper()]
            method.authorization_type = _authorization(api_doc, method_doc)
    return api


def import_rest_api(self: APIGatewayBackend, api_doc: dict[str, Any], fail_on_warnings: bool) -> Any:
    info = api_doc.get("info", {})
    api = self.create_rest_api(name=info["title"], description=info.get("description", ""))
    put_rest_api(self, api.id, api_doc, fail_on_warnings)
    return api


def main() -> None:
    APIGatewayBackend.put_rest_api = put_rest_api  # type: ignore[method-assign]
    APIGatewayBackend.import_rest_api = import_rest_api  # type: ignore[method-assign]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
