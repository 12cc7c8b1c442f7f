"""Benchmark 2, warm vend overhead: in one process, POST /credentials through the Chalice app
(API Gateway event in, response out) with AWS answered by botocore's Stubber, against a bare stubbed
`sts.assume_role` with the same parameters on the same client.

The stubbed DynamoDB Query answers once: every timed request is a grant-cache hit, the normal warm
case (the cache lifetime is raised so that no timed request reaches DynamoDB). Every request sends
the same body, as a credential_process profile does, so its validated form is remembered after the
first. A second loop, after the first, sends a new body each time (build ids differ) against the
floor again, to show what a miss costs. A third loop sends POST /oidc/credentials with a CI job's
token (issue 22), verified on every request (signature, claims, grant), against the floor: the
issuer's keys are fetched once, from a local issuer on loopback, before the clock runs.
Stubbed STS answers are queued before the clock runs; the
Stubber skips signing and HTTP on both sides alike. Runs in a child process whose stdout (the audit
lines and EMF metrics, written as in Lambda) is /dev/null.
"""

from __future__ import annotations

import gc
import json
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from bench.common import PYTHON, base_environment, child_main, comparison, oidc_entries, run_child

NAME = "warm_vend"
TITLE = "Warm vend overhead (in-process, Stubber)"
WARMUP = 200
REQUESTS = 3000
# stsvend's own share over what any Chalice + powertools vendor pays (the framework floor).
GOAL = 1.1


def run(context: Any) -> dict[str, Any]:
    env = {
        **base_environment(),
        "AWS_LAMBDA_FUNCTION_NAME": "stsvend-bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "STSVEND_GRANTS_TABLE": "stsvend-grants-bench",
        "STSVEND_IDENTITY_MODE": "apigateway",
        "STSVEND_GRANT_CACHE_SECONDS": "3600",
    }
    _, result = run_child([PYTHON, "-m", "bench.warm"], env, timeout=240)
    how = f"{REQUESTS} requests each after {WARMUP} warm-up, interleaved"
    subject, baseline = result["subject"], result["baseline"]
    return {
        "title": TITLE,
        "comparisons": [
            comparison("vend through the Chalice app vs bare stubbed sts.assume_role (p50)",
                       subject, baseline, None, "app(event) -> response", "sts.assume_role(**same params)",
                       how),
            comparison("the same, at p99", subject, baseline, None, "app(event) -> response",
                       "sts.assume_role(**same params)", how, quantile="p99_ms"),
            comparison("framework floor (Chalice + powertools log line + EMF metric) vs bare call",
                       result["framework"], baseline, None, "minimal Chalice + powertools vendor",
                       "sts.assume_role(**same params)", how),
            comparison("stsvend vs that framework floor: stsvend's own share",
                       subject, result["framework"], GOAL, "app(event) -> response",
                       "minimal Chalice + powertools vendor", how),
            comparison("the same, every request a new body (its validated form not remembered)",
                       result["new_body"], result["new_body_floor"], None,
                       "app(event with a body not seen before) -> response",
                       "minimal Chalice + powertools vendor", how),
            comparison("OIDC vend (token verified on every request) vs that framework floor: its own share",
                       result["oidc"], result["oidc_floor"], None,
                       "app(POST /oidc/credentials) -> response", "minimal Chalice + powertools vendor", how),
        ],
        "assume_role_parameters": result["parameters"],
    }


def _sts_answer(params: dict[str, Any], serial: int) -> dict[str, Any]:
    account, role = params["RoleArn"].split(":")[4], params["RoleArn"].rsplit("/", 1)[1]
    return {
        "Credentials": {
            "AccessKeyId": f"ASIABENCH{serial:011d}",
            "SecretAccessKey": "bench-stub-secret-key-not-real-0000000000",
            "SessionToken": "bench-stub-session-token-not-real",
            "Expiration": datetime.now(timezone.utc) + timedelta(seconds=params["DurationSeconds"]),
        },
        "AssumedRoleUser": {
            "AssumedRoleId": f"AROABENCHDEPLOYER0001:{params['RoleSessionName']}",
            "Arn": f"arn:aws:sts::{account}:assumed-role/{role}/{params['RoleSessionName']}",
        },
        "SourceIdentity": params["SourceIdentity"],
    }


def prepare(
    total: int, oidc_items: list[dict[str, Any]] | None = None, app: str = "app", lib: str = "chalicelib"
) -> tuple[Any, list[dict[str, Any]], Any, dict[str, Any]]:
    """The app, `total` events, the stubbed STS client and the parameters the app sends it; every
    STS answer the timed loops will need is already queued (seven per event). `app` and `lib` name
    the modules to serve (bench.warmablation imports another commit's under other names)."""
    import importlib

    from botocore.stub import Stubber

    from bench.events import LambdaContext, credentials_event, jenkins_grant

    app_module = importlib.import_module(app)
    to_item = importlib.import_module(f"{lib}.grant_store").to_item
    settings = importlib.import_module(f"{lib}.config").Settings.from_env()
    clients = importlib.import_module(f"{lib}.aws").AwsClients(settings.region)
    stsvend = importlib.import_module(f"{lib}.service").Stsvend
    app_module.use_service(stsvend.from_settings(settings, clients=clients))
    sts, ddb = clients.sts(), clients.dynamodb()
    item = to_item(jenkins_grant())
    ddb_stub = Stubber(ddb)
    ddb_stub.add_response("query", {"Items": [item], "Count": 1, "ScannedCount": 1})
    if oidc_items is not None:  # the oidc partition, read on the first OIDC request
        stored = [to_item(i) for i in oidc_items]
        ddb_stub.add_response("query", {"Items": stored, "Count": len(stored), "ScannedCount": len(stored)})
    ddb_stub.activate()
    sts_stub = Stubber(sts)
    sts_stub.activate()

    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(params)

    sts.meta.events.register("provide-client-params.sts.AssumeRole", record)
    context = LambdaContext()
    first = credentials_event("00000000-0000-4000-8000-000000000000")
    sts_stub.add_response("assume_role", _sts_answer(_expected_params(), 0))
    if app_module.app(first, context)["statusCode"] != 200:
        raise RuntimeError("the first vend failed")
    params = dict(sent[0])
    # By the handler: botocore unregisters nothing without it, and the list would grow by one
    # AssumeRole per timed request (more for the app's fresh parameters than the floor's).
    sts.meta.events.unregister("provide-client-params.sts.AssumeRole", record)
    answer = _sts_answer(params, 1)
    for _ in range(7 * total):
        sts_stub.add_response("assume_role", answer)
    events = [credentials_event(f"00000000-0000-4000-8000-{n:012d}") for n in range(1, total + 1)]
    return app_module.app, events, sts, params


def framework_floor(sts: Any, params: dict[str, Any]) -> Any:
    """What any Chalice + powertools vendor does per request, and nothing of stsvend's own: the
    same middleware, the body decoded, the same stubbed AssumeRole, one powertools log line with
    the audit record's fields, one EMF metric, the credentials as the JSON answer."""
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.metrics import MetricUnit, single_metric
    from chalice.app import Chalice, ConvertToMiddleware, IAMAuthorizer, Response

    logger = Logger(service="floor")
    floor = Chalice(app_name="floor", configure_logs=False)
    floor.register_middleware(ConvertToMiddleware(logger.inject_lambda_context))
    tags = {t["Key"]: t["Value"] for t in params["Tags"]}

    @floor.route("/credentials", methods=["POST"], authorizer=IAMAuthorizer())
    def credentials() -> Response:
        request = floor.current_request
        body = json.loads(request.raw_body)
        creds = sts.assume_role(**params)["Credentials"]
        identity = request.context["identity"]
        logger.info("credentials vended", extra={
            "event": "credentials.vended", "request_id": request.context["requestId"],
            "caller_arn": identity["userArn"], "caller_principal": identity["userArn"],
            "caller_account": identity["accountId"], "caller_user_id": identity["caller"],
            "source_ip": identity["sourceIp"], "user_agent": identity["userAgent"],
            "role_arn": body["role_arn"], "role_session_name": params["RoleSessionName"],
            "source_identity": params["SourceIdentity"], "duration_seconds": params["DurationSeconds"],
            "expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"), "tags": tags,
            "session_policy": True, "external_id_used": True, "access_key_id": creds["AccessKeyId"],
        })
        with single_metric(name="CredentialsVended", unit=MetricUnit.Count, value=1,
                           namespace="stsvend") as metric:
            metric.add_dimension(name="service", value="stsvend")
        return Response(body={
            "Version": 1, "AccessKeyId": creds["AccessKeyId"], "SecretAccessKey": creds["SecretAccessKey"],
            "SessionToken": creds["SessionToken"], "Expiration": creds["Expiration"].isoformat(),
        }, status_code=200, headers={"Cache-Control": "no-store"})

    return floor


def new_body_events(total: int) -> list[dict[str, Any]]:
    """`total` events whose bodies differ from each other and from the usual one (by a build id)."""
    from bench.events import REQUEST, credentials_event

    return [
        credentials_event(f"00000000-0000-4000-9000-{n:012d}",
                          {**REQUEST, "tags": {**REQUEST["tags"], "build-id": f"n{n:04d}"}})
        for n in range(total)
    ]


def measure() -> dict[str, Any]:
    from bench.events import DEPLOYER, LambdaContext, oidc_event
    from stsvend.local.oidc_issuer import LocalIssuer

    issuer = LocalIssuer("github-actions").start()
    app, events, sts, params = prepare(WARMUP + REQUESTS, oidc_entries(issuer.url))
    token = issuer.token()
    body = {"role_arn": DEPLOYER, "duration_seconds": 900}
    oidc_events = [
        oidc_event(f"00000000-0000-4000-a000-{n:012d}", token, body) for n in range(WARMUP + REQUESTS)
    ]
    fresh = new_body_events(WARMUP + REQUESTS)
    floor = framework_floor(sts, params)
    context = LambdaContext()
    assume_role, clock = sts.assume_role, time.perf_counter
    sides: list[list[float]] = [[], [], []]
    statuses: set[int] = set()
    orders = ((0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1), (2, 1, 0), (1, 0, 2))
    gc.collect()
    for n, event in enumerate(events):
        # Change who goes first, so that no side always follows another's garbage.
        for side in orders[n % len(orders)]:
            started = clock()
            if side == 0:
                statuses.add(app(event, context)["statusCode"])
            elif side == 1:
                assume_role(**params)
            else:
                statuses.add(floor(event, context)["statusCode"])
            sides[side].append(clock() - started)
    # Then, on their own (the three sides above run as they always have): a new body every time
    # against the floor, then the OIDC route against the floor, each taking turns to go first.
    misses = _against_floor(app, fresh, floor, events, context, statuses)
    ci = _against_floor(app, oidc_events, floor, events, context, statuses)
    issuer.stop()
    if statuses != {200}:
        raise RuntimeError(f"vend answered {sorted(statuses)}")
    subject, baseline, framework = (times[WARMUP:] for times in sides)
    new_body, new_body_floor = (times[WARMUP:] for times in misses)
    oidc_times, oidc_floor = (times[WARMUP:] for times in ci)
    return {"subject": subject, "baseline": baseline, "framework": framework, "new_body": new_body,
            "new_body_floor": new_body_floor, "oidc": oidc_times, "oidc_floor": oidc_floor,
            "parameters": sorted(params)}


def _against_floor(
    app: Any, app_events: list[dict[str, Any]], floor: Any, floor_events: list[dict[str, Any]],
    context: Any, statuses: set[int],
) -> list[list[float]]:
    """The app on `app_events` and the floor on `floor_events`, taking turns to go first: the times
    of each side."""
    clock = time.perf_counter
    sides: list[list[float]] = [[], []]
    gc.collect()
    for n, (mine, theirs) in enumerate(zip(app_events, floor_events, strict=True)):
        for side in (0, 1) if n % 2 else (1, 0):
            started = clock()
            statuses.add((app(mine, context) if side == 0 else floor(theirs, context))["statusCode"])
            sides[side].append(clock() - started)
    return sides


def _expected_params() -> dict[str, Any]:
    from bench.events import DEPLOYER

    return {"RoleArn": DEPLOYER, "RoleSessionName": "jenkins-agent-i-0abc123", "DurationSeconds": 900,
            "SourceIdentity": "jenkins-agent"}


if __name__ == "__main__":
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    child_main(measure)
