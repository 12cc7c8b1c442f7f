"""Benchmark 5, grant-table scale: vend latency with the caller's account holding 10 grants, in a
table of 10 grants vs one of 20,000 grants spread over 2,000 accounts (10 each, the caller's 10
included), both on a moto server (DynamoDB and STS) on loopback, loaded with BatchWriteItem.

Warm cache: the account's grants are in the service's memory (STS AssumeRole is the only call).
Cold cache: a service whose grant cache is off runs the one DynamoDB Query on every request.
All four, and a bare Query on each table (the emulator's own cost), run interleaved in one child
process, the app invoked with API Gateway events as Lambda would.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench.common import (
    PYTHON,
    base_environment,
    botocore_client,
    child_main,
    comparison,
    create_grants_table,
    interleaved,
    moto_server,
    percentile,
    run_child,
    summary,
)
from bench.events import JENKINS_ACCOUNT, jenkins_grant

NAME = "grant_scale"
TITLE = "Grant-table scale (10 vs 20,000 grants; moto on loopback)"
SMALL, LARGE = "stsvend-grants-10", "stsvend-grants-20000"
ACCOUNTS, PER_ACCOUNT = 2000, 10
WARMUP, ROUNDS = 10, 60
GOAL = 1.1


def account_grants(account: str) -> list[dict[str, Any]]:
    """PER_ACCOUNT grants of one account; in the caller's account, the caller's is one of them."""
    grants = []
    for n in range(PER_ACCOUNT):
        if account == JENKINS_ACCOUNT and n == 0:
            grants.append(jenkins_grant())
            continue
        grant = jenkins_grant(f"arn:aws:iam::{account}:role/app-{n:02d}")
        grant["description"] = f"application {n} of account {account}"
        grants.append(grant)
    return grants


def run(context: Any) -> dict[str, Any]:
    with moto_server(NAME) as url:
        ddb = botocore_client("dynamodb", url)
        loading = time.perf_counter()
        create_grants_table(ddb, SMALL, account_grants(JENKINS_ACCOUNT))
        others = (f"{300000000000 + n:012d}" for n in range(ACCOUNTS - 1))
        create_grants_table(
            ddb, LARGE, [g for a in (JENKINS_ACCOUNT, *others) for g in account_grants(a)]
        )
        loaded = time.perf_counter() - loading
        counts = {t: ddb.describe_table(TableName=t)["Table"]["ItemCount"] for t in (SMALL, LARGE)}
        env = {
            **base_environment(),
            "AWS_ENDPOINT_URL": url,
            "AWS_LAMBDA_FUNCTION_NAME": "stsvend-bench",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "STSVEND_GRANTS_TABLE": SMALL,
            "STSVEND_IDENTITY_MODE": "apigateway",
        }
        _, result = run_child([PYTHON, "-m", "bench.scale"], env, timeout=240)
    how = f"{ROUNDS} requests each after {WARMUP} warm-up, seven kinds interleaved"
    t = result["timings"]
    return {
        "title": TITLE,
        "comparisons": [
            comparison("warm cache: vend with 20,000 grants vs 10", t["warm-20000"], t["warm-10"], GOAL,
                       "20,000 grants", "10 grants", how),
            comparison("cold cache: vend with 20,000 grants vs 10", t["cold-20000"], t["cold-10"], GOAL,
                       "20,000 grants", "10 grants", how),
            comparison("cold cache, 10 grants' Query held back by the emulator's extra scan time",
                       t["cold-20000"], t["held-10"], GOAL, "20,000 grants",
                       f"10 grants + {result['hold_ms']:.0f} ms", how),
            comparison("the emulator alone: bare DynamoDB Query, 20,000 vs 10 grants",
                       t["query-20000"], t["query-10"], None, "20,000 grants", "10 grants", how),
        ],
        "items": counts,
        "load_seconds": round(loaded, 1),
        "query_p50_ms": {k: summary(v)["p50_ms"] for k, v in t.items() if k.startswith("query")},
        "query_hold_ms": result["hold_ms"],
    }


def measure() -> dict[str, Any]:
    import app as app_module
    from bench.events import LambdaContext, credentials_event
    from chalicelib.aws import AwsClients
    from chalicelib.config import Settings
    from chalicelib.grant_store import GrantStore
    from chalicelib.service import Stsvend

    settings = Settings.from_env()
    clients = AwsClients(settings.region)
    stores = {
        f"{kind}-{size}": GrantStore(clients.dynamodb, table, 3600 if kind == "warm" else 0)
        for kind in ("warm", "cold")
        for size, table in (("10", SMALL), ("20000", LARGE))
    }
    services = {
        name: Stsvend.from_settings(settings, clients=clients, grants=store) for name, store in stores.items()
    }
    # The control: 10 grants, with every Query held back by the emulator's extra scan time on the
    # large table, so that both sides wait for DynamoDB equally long.
    held_clients = AwsClients(settings.region)
    hold = [0.0]
    held_clients.dynamodb().meta.events.register(
        "before-send.dynamodb.Query", lambda **_: time.sleep(hold[0])
    )
    services["held-10"] = Stsvend.from_settings(
        settings, clients=held_clients, grants=GrantStore(held_clients.dynamodb, SMALL, 0)
    )
    context = LambdaContext()
    serial = iter(range(10**9))

    def vend(service: Stsvend) -> Any:
        def once() -> None:
            app_module.use_service(service)
            event = credentials_event(f"00000000-0000-4000-8000-{next(serial):012d}")
            response = app_module.app(event, context)
            if response["statusCode"] != 200:
                raise RuntimeError(f"vend answered {response['statusCode']}: {json.loads(response['body'])}")

        return once

    def query(table: str) -> Any:
        ddb = clients.dynamodb()

        def once() -> None:
            ddb.query(
                TableName=table,
                KeyConditionExpression="account_id = :a",
                ExpressionAttributeValues={":a": {"S": JENKINS_ACCOUNT}},
            )

        return once

    names = [*services, "query-10", "query-20000"]
    actions = [vend(s) for s in services.values()] + [query(SMALL), query(LARGE)]
    for action in actions:  # every service's first request: client creation, the first Query
        action()
    warm_up = dict(zip(names, interleaved(WARMUP, *actions), strict=True))
    hold[0] = max(0.0, percentile(warm_up["query-20000"], 50) - percentile(warm_up["query-10"], 50))
    timings = interleaved(ROUNDS, *actions)
    found = {
        size: len(stores[f"cold-{size}"].for_account(JENKINS_ACCOUNT)) for size in ("10", "20000")
    }
    if set(found.values()) != {PER_ACCOUNT}:
        raise RuntimeError(f"the caller's account should hold {PER_ACCOUNT} grants, found {found}")
    return {"timings": dict(zip(names, timings, strict=True)), "hold_ms": round(hold[0] * 1000, 3)}


if __name__ == "__main__":
    child_main(measure)
