"""What Lambda hands the function: API Gateway REST proxy events behind AWS_IAM auth, and a context.

Standard library only (json): cold-start children import this before the code they measure.
"""

from __future__ import annotations

import json
from typing import Any

REGION = "us-east-1"
JENKINS_ACCOUNT = "111111111111"
JENKINS_ARN = f"arn:aws:sts::{JENKINS_ACCOUNT}:assumed-role/jenkins-agent/i-0abc123"
JENKINS_PRINCIPAL = f"arn:aws:iam::{JENKINS_ACCOUNT}:role/jenkins-agent"
JENKINS_USER_ID = "AROAJENKINSAGENT00001:i-0abc123"
DEPLOYER = "arn:aws:iam::222222222222:role/deployer"
# What a Jenkins build asks for: a role, a shorter session, two tags the grant allows.
REQUEST = {"role_arn": DEPLOYER, "duration_seconds": 900, "tags": {"build-id": "1234", "job-name": "deploy"}}
SESSION_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*", "ec2:RunInstances"], "Resource": "*"}],
}


def jenkins_grant(principal: str = JENKINS_PRINCIPAL) -> dict[str, Any]:
    """A grant in its stored form (docs/design.md section 3), as plain values."""
    return {
        "account_id": principal.split(":")[4],
        "principal": principal,
        "description": "Jenkins agents deploy to dev",
        "enabled": True,
        "not_after": "2099-12-31T00:00:00Z",
        "source_cidrs": ["10.0.0.0/8"],
        "request_tags": ["build-id", "job-name"],
        "roles": [
            {
                "role_arn": DEPLOYER,
                "max_duration_seconds": 3600,
                "session_policy": "ec2-deploy",
                "session_policy_document": json.dumps(SESSION_POLICY, separators=(",", ":")),
                "policy_arns": [],
                "external_id": "stsvend-dev",
            }
        ],
    }


def credentials_event(request_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST /credentials as API Gateway (REST API, AWS_IAM) delivers it to the function."""
    headers = {"Content-Type": "application/json", "User-Agent": "stsvend/0.1.0"}
    return {
        "resource": "/credentials",
        "path": "/credentials",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": "/credentials",
            "httpMethod": "POST",
            "path": "/api/credentials",
            "accountId": "999999999999",
            "protocol": "HTTP/1.1",
            "stage": "api",
            "requestId": request_id,
            "identity": {
                "accountId": JENKINS_ACCOUNT,
                "caller": JENKINS_USER_ID,
                "sourceIp": "10.1.2.3",
                "accessKey": "ASIAEXAMPLECALLER",
                "userArn": JENKINS_ARN,
                "userAgent": "stsvend/0.1.0",
                "user": JENKINS_USER_ID,
            },
            "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc",
        },
        "body": json.dumps(body or REQUEST),
        "isBase64Encoded": False,
    }


def oidc_event(request_id: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /oidc/credentials as API Gateway delivers it: no IAM identity, a bearer token."""
    event = credentials_event(request_id, body)
    event["resource"] = event["path"] = event["requestContext"]["resourcePath"] = "/oidc/credentials"
    event["requestContext"]["path"] = "/api/oidc/credentials"
    event["requestContext"]["identity"] = {"sourceIp": "198.51.100.7", "userAgent": "stsvend/0.1.0"}
    event["headers"] = {**event["headers"], "Authorization": f"Bearer {token}"}
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    return event


class LambdaContext:
    function_name = "stsvend-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:999999999999:function:stsvend-bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
