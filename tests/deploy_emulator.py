"""The rehearsal tests' AWS emulator: moto in server mode, in a process of its own, with the steps
moto 5.2.5 cannot do filled in here (and only here; nothing deployed is changed to suit it).

    python -c "from tests.deploy_emulator import main; main()"   # prints the URL, serves until stdin closes

Importing this module registers CloudFormation resource types with moto (moto names a model's
service after its module, so it is imported, never run as `__main__`): only the emulator process
imports it.

The gaps, each filled as AWS documents the behaviour:

- API Gateway's `ImportRestApi`/`PutRestApi` in moto read OpenAPI 3 only and answer a Swagger 2.0
  document, which is what Chalice sends, with a 500. API Gateway itself imports Swagger 2.0 and maps
  a method's security requirement to its authorization type: a scheme with
  `x-amazon-apigateway-authtype: awsSigv4` becomes `AWS_IAM` ("x-amazon-apigateway-authtype
  property" in the API Gateway developer guide). The patch hands moto the same paths under an
  OpenAPI 3 version field and then sets each method's authorization type by that mapping, so the
  test reads back what API Gateway would hold, from the document Chalice really sent.
- CloudFormation (the package forms, tests/functional/test_deploy_rehearsal_cloudformation.py):
  moto has no `AWS::Serverless-2016-10-31` transform (CloudFormation runs SAM's, aws-sam-translator,
  which tests/sam_transform.py runs here); its `AWS::ApiGateway::RestApi` ignores `Body` (real
  CloudFormation imports it, as `PutRestApi` does); it has no `AWS::ApiGateway::Stage`,
  `AWS::Lambda::Alias`, `AWS::Logs::MetricFilter`, `AWS::Logs::QueryDefinition`,
  `AWS::CloudWatch::Alarm` or `AWS::WAFv2::WebACLAssociation` (each is made here with the API call
  CloudFormation's handler makes); its `AWS::Lambda::Version` has no `Version` attribute and no
  ARN for `Ref`; after a change set is executed it keeps the outputs of the template it had before;
  and it has no Logs query definitions API (`PutQueryDefinition`, `DescribeQueryDefinitions`).
"""

from __future__ import annotations

import copy
import json
import sys
import uuid
from typing import Any

from moto.apigateway.models import APIGatewayBackend, Deployment, RestAPI, apigateway_backends
from moto.awslambda.models import LambdaFunction, LambdaVersion
from moto.awslambda.models import lambda_backends as _lambda_backends
from moto.awslambda.utils import make_function_ver_arn
from moto.cloudformation.models import ChangeSet, CloudFormationBackend, Stack, cloudformation_backends
from moto.cloudformation.parsing import parse_and_update_resource
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.logs.models import LogsBackend, logs_backends
from moto.logs.responses import LogsResponse
from moto.server import ThreadedMotoServer
from moto.wafv2.models import wafv2_backends

from tests.sam_transform import sam_transform

SAM = "AWS::Serverless-2016-10-31"
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


# --- CloudFormation ---------------------------------------------------------------------------------

_parse_template = Stack.parse_template
_rest_api_from_cloudformation = RestAPI.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
_execute_change_set = CloudFormationBackend.execute_change_set


def parse_template(template: str) -> dict[str, Any]:
    """A template as CloudFormation processes it: with SAM's transform, when it declares it."""
    parsed: dict[str, Any] = _parse_template(template)
    return sam_transform(parsed) if parsed.get("Transform") == SAM else parsed


def parse_change_set_template(self: ChangeSet) -> None:
    self.template_dict = parse_template(self.template)


def execute_change_set(
    self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None
) -> None:
    """As CloudFormation: after the change set, the stack's outputs are its new template's."""
    _execute_change_set(self, change_set_name, stack_name)
    stack = self.describe_change_set(change_set_name).stack
    stack._parse_template()
    stack.output_map = stack._create_output_map()


def rest_api_from_cloudformation(
    cls: type[RestAPI], resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
    region_name: str, **kwargs: Any,
) -> RestAPI:
    """`Body` imported as PutRestApi imports it (CloudFormation: "AWS::ApiGateway::RestApi", Body);
    the name is the document's title unless `Name` is given."""
    properties = cloudformation_json["Properties"]
    body = properties.get("Body")
    if body is None:
        return _rest_api_from_cloudformation(cls, resource_name, cloudformation_json, account_id, region_name,
                                             **kwargs)
    backend = apigateway_backends[account_id][region_name]
    info = body.get("info", {})
    api: RestAPI = backend.create_rest_api(
        name=properties.get("Name") or info["title"],
        description=properties.get("Description", info.get("description", "")),
        endpoint_configuration=properties.get("EndpointConfiguration"),
    )
    put_rest_api(backend, api.id, body, False, properties.get("Mode", "overwrite"))
    return api


def version_from_cloudformation(
    cls: type[LambdaVersion], resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
    region_name: str, **kwargs: Any,
) -> LambdaVersion:
    """PublishVersion; `Ref` is the version's ARN and `Fn::GetAtt Version` its number."""
    function_name = cloudformation_json["Properties"]["FunctionName"]
    stack = cloudformation_backends[account_id][region_name].stacks.get(kwargs.get("StackId", ""))
    if stack is not None:
        # A version depends on its function: CloudFormation updates the function before it publishes
        # the new version (moto would create the new version before it updates the function).
        resources = stack.resource_map
        for logical_id, resource_json in resources._resource_json_map.items():
            function = resources._parsed_resources.get(logical_id)
            if resource_json["Type"] == LambdaFunction.cloudformation_type() and getattr(
                function, "function_name", None
            ) == function_name:
                parse_and_update_resource(logical_id, resource_json, resources, account_id, region_name)
    published = _lambda_backends[account_id][region_name].publish_version(function_name)
    assert published is not None
    version = LambdaVersion({"Version": published.version})
    version.arn = make_function_ver_arn(  # type: ignore[attr-defined]
        region_name, account_id, published.function_name, published.version)
    return version


class _Model:
    """What the emulated resource types share: no name property, no attribute but those named."""

    attributes: dict[str, str] = {}
    physical_id = ""

    @classmethod
    def made(cls, physical_id: str) -> Any:
        model = cls()
        model.physical_id = physical_id
        return model

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.attributes

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return getattr(self, self.attributes[attribute_name])

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id


class EmulatedStage(_Model, CloudFormationModel):
    """AWS::ApiGateway::Stage: CreateStage, then its settings as UpdateStage patch operations, as API
    Gateway holds them (method settings keyed `<resource path>/<method>`, `~1` for each `/`)."""

    def __init__(self, account_id: str, region_name: str, api_id: str, name: str) -> None:
        self.account_id, self.region_name = account_id, region_name
        self.api_id, self.physical_id = api_id, name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::Stage"

    @staticmethod
    def _operations(properties: dict[str, Any]) -> list[dict[str, str]]:
        operations = [{"op": "replace", "path": "/deploymentId", "value": properties["DeploymentId"]}]
        operations.append({"op": "replace", "path": "/tracingEnabled",
                           "value": str(bool(properties.get("TracingEnabled", False))).lower()})
        for setting in properties.get("MethodSettings", []):
            prefix = f"{setting['ResourcePath']}/{setting['HttpMethod']}"
            for key, path in (("ThrottlingRateLimit", "throttling/rateLimit"),
                              ("ThrottlingBurstLimit", "throttling/burstLimit")):
                if key in setting:
                    value = str(setting[key])
                    operations.append({"op": "replace", "path": f"{prefix}/{path}", "value": value})
        access = properties.get("AccessLogSetting")
        if access:
            operations += [{"op": "replace", "path": "/accessLogSettings/destinationArn",
                            "value": access["DestinationArn"]},
                           {"op": "replace", "path": "/accessLogSettings/format", "value": access["Format"]}]
        return operations

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str,
        **kwargs: Any,
    ) -> EmulatedStage:
        properties = cloudformation_json["Properties"]
        backend = apigateway_backends[account_id][region_name]
        name = properties["StageName"]
        backend.create_stage(properties["RestApiId"], name, properties["DeploymentId"])
        backend.update_stage(properties["RestApiId"], name, cls._operations(properties))
        return cls(account_id, region_name, properties["RestApiId"], name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls, original_resource: EmulatedStage, new_resource_name: str, cloudformation_json: dict[str, Any],
        account_id: str, region_name: str,
    ) -> EmulatedStage:
        properties = cloudformation_json["Properties"]
        apigateway_backends[account_id][region_name].update_stage(
            properties["RestApiId"], properties["StageName"], cls._operations(properties))
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        apigateway_backends[account_id][region_name].delete_stage(self.api_id, self.physical_id)


class EmulatedAlias(_Model, CloudFormationModel):
    """AWS::Lambda::Alias: CreateAlias / UpdateAlias; `Ref` is the alias's ARN."""

    def __init__(self, arn: str, function_name: str, name: str) -> None:
        self.physical_id, self.function_name, self.name = arn, function_name, name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Alias"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str,
        **kwargs: Any,
    ) -> EmulatedAlias:
        p = cloudformation_json["Properties"]
        alias = _lambda_backends[account_id][region_name].create_alias(
            p["Name"], p["FunctionName"], str(p["FunctionVersion"]), p.get("Description", ""), None)
        return cls(alias.arn, p["FunctionName"], p["Name"])

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls, original_resource: EmulatedAlias, new_resource_name: str, cloudformation_json: dict[str, Any],
        account_id: str, region_name: str,
    ) -> EmulatedAlias:
        p = cloudformation_json["Properties"]
        _lambda_backends[account_id][region_name].update_alias(
            p["Name"], p["FunctionName"], str(p["FunctionVersion"]), p.get("Description", ""), None)
        return original_resource


class EmulatedMetricFilter(_Model, CloudFormationModel):
    """AWS::Logs::MetricFilter: PutMetricFilter."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Logs::MetricFilter"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str,
        **kwargs: Any,
    ) -> EmulatedMetricFilter:
        p = cloudformation_json["Properties"]
        name = p.get("FilterName", resource_name)
        transformations = [
            {
                "metricName": t["MetricName"], "metricNamespace": t["MetricNamespace"],
                "metricValue": t["MetricValue"],
                **({"defaultValue": t["DefaultValue"]} if "DefaultValue" in t else {}),
            }
            for t in p["MetricTransformations"]
        ]
        logs_backends[account_id][region_name].put_metric_filter(
            name, p["FilterPattern"], p["LogGroupName"], transformations)  # type: ignore[arg-type]
        return cls.made(name)


def _query_definitions(backend: LogsBackend) -> dict[str, dict[str, Any]]:
    store: dict[str, dict[str, Any]] = backend.__dict__.setdefault("stsvend_query_definitions", {})
    return store


def put_query_definition(self: LogsResponse) -> str:
    store = _query_definitions(self.logs_backend)
    query_id = self._get_param("queryDefinitionId") or str(uuid.uuid4())
    store[query_id] = {"queryDefinitionId": query_id, "name": self._get_param("name"),
                       "queryString": self._get_param("queryString"),
                       "logGroupNames": self._get_param("logGroupNames", [])}
    return json.dumps({"queryDefinitionId": query_id})


def describe_query_definitions(self: LogsResponse) -> str:
    prefix = self._get_param("queryDefinitionNamePrefix") or ""
    found = [d for d in _query_definitions(self.logs_backend).values() if d["name"].startswith(prefix)]
    return json.dumps({"queryDefinitions": sorted(found, key=lambda d: d["name"])})


class EmulatedQueryDefinition(_Model, CloudFormationModel):
    """AWS::Logs::QueryDefinition: PutQueryDefinition (emulated above: moto has none)."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Logs::QueryDefinition"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str,
        **kwargs: Any,
    ) -> EmulatedQueryDefinition:
        p = cloudformation_json["Properties"]
        query_id = str(uuid.uuid4())
        _query_definitions(logs_backends[account_id][region_name])[query_id] = {
            "queryDefinitionId": query_id, "name": p["Name"], "queryString": p["QueryString"],
            "logGroupNames": p.get("LogGroupNames", []),
        }
        return cls.made(query_id)


class EmulatedAlarm(_Model, CloudFormationModel):
    """AWS::CloudWatch::Alarm: PutMetricAlarm."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str,
        **kwargs: Any,
    ) -> EmulatedAlarm:
        p = cloudformation_json["Properties"]
        name = p.get("AlarmName", resource_name)
        cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=name, namespace=p["Namespace"], metric_name=p["MetricName"],
            comparison_operator=p["ComparisonOperator"], evaluation_periods=int(p["EvaluationPeriods"]),
            period=int(p["Period"]), threshold=float(p["Threshold"]), statistic=p["Statistic"],
            description=p.get("AlarmDescription", ""),
            dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in p.get("Dimensions", [])],
            alarm_actions=p.get("AlarmActions", []), ok_actions=p.get("OKActions", []),
            datapoints_to_alarm=p.get("DatapointsToAlarm"), treat_missing_data=p.get("TreatMissingData"),
        )
        return cls.made(name)


class EmulatedWebAclAssociation(_Model, CloudFormationModel):
    """AWS::WAFv2::WebACLAssociation: AssociateWebACL."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::WAFv2::WebACLAssociation"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str,
        **kwargs: Any,
    ) -> EmulatedWebAclAssociation:
        p = cloudformation_json["Properties"]
        wafv2_backends[account_id][region_name].associate_web_acl(p["WebACLArn"], p["ResourceArn"])
        return cls.made(p["ResourceArn"])


def install() -> None:
    APIGatewayBackend.put_rest_api = put_rest_api  # type: ignore[method-assign]
    APIGatewayBackend.import_rest_api = import_rest_api  # type: ignore[method-assign]
    Stack.parse_template = staticmethod(parse_template)  # type: ignore[method-assign,assignment]
    ChangeSet._parse_template = parse_change_set_template  # type: ignore[method-assign]
    CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]
    RestAPI.create_from_cloudformation_json = classmethod(rest_api_from_cloudformation)  # type: ignore[method-assign,assignment]
    LambdaVersion.create_from_cloudformation_json = classmethod(version_from_cloudformation)  # type: ignore[method-assign,assignment]
    LambdaVersion.has_cfn_attr = classmethod(lambda cls, attr: attr == "Version")  # type: ignore[method-assign,assignment]
    LambdaVersion.get_cfn_attribute = lambda self, attr: self.version  # type: ignore[method-assign]
    LambdaVersion.physical_resource_id = property(lambda self: self.arn)  # type: ignore[attr-defined]
    Deployment.physical_resource_id = property(lambda self: self.id)  # type: ignore[attr-defined]
    LogsResponse.put_query_definition = put_query_definition  # type: ignore[attr-defined]
    LogsResponse.describe_query_definitions = describe_query_definitions  # type: ignore[attr-defined]


def main() -> None:
    install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)
    sys.stdin.read()
    server.stop()

