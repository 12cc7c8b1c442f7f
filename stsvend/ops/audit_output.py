"""How `stsvend audit` prints its answer: a table (with, for each vend, where CloudTrail holds what
its credentials did) or one JSON object a line. Every value from a log or from CloudTrail is printed
through stsvend.terminal (the table) or as ASCII-escaped JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from stsvend.ops import common
from stsvend.ops.audit_cloudtrail import TrailQuestion, lookup_events
from stsvend.ops.audit_records import Decision
from stsvend.terminal import identifier

CLOUDTRAIL_SHOWN = 10  # vends whose CloudTrail queries are printed; narrow the question for others


def table(rows: list[list[str]]) -> list[str]:
    # Every cell is ASCII when valid (ARNs, times, codes, ids): anything else shows escaped.
    cells = [[identifier(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def decision_rows(decisions: list[Decision]) -> list[list[str]]:
    rows = [["TIME", "DECISION", "CALLER", "ROLE", "REQUEST_ID", "ACCESS_KEY_ID"]]
    for d in decisions:
        rows.append(
            [
                common.utc_text(d.time),
                d.outcome,
                d.caller or "-",
                d.role_arn or "-",
                d.request_id,
                d.access_key_id or "-",
            ]
        )
    return rows


def print_table(
    decisions: list[Decision], region: str, trail: Callable[[TrailQuestion], None] | None
) -> None:
    if not decisions:
        print("No decisions match.")
        return
    for line in table(decision_rows(decisions)):
        print(line)
    vends = [q for q in (TrailQuestion.of(d) for d in decisions if d.vended) if q is not None]
    for index, question in enumerate(vends):
        if index == CLOUDTRAIL_SHOWN:
            print(f"\n({len(vends) - CLOUDTRAIL_SHOWN} more vends: ask about one with --request-id.)")
            break
        print(
            f"\nCloudTrail, request {question.request_id} ({question.role_arn}, access key"
            f" {question.access_key_id}), in the role's account and the region the calls were made in:"
        )
        print(f"  {question.lookup_events(region)}")
        print("  CloudTrail Lake:")
        for sql in question.lake_sql():
            print(f"    {sql};")
        print("  Athena (the trail's table):")
        for sql in question.athena_sql():
            print(f"    {sql};")
        if trail is not None:
            trail(question)


def print_trail(cloudtrail: Any, question: TrailQuestion) -> None:
    rows = [["TIME", "SOURCE", "EVENT", "REGION", "ERROR", "SOURCE_IP"]]
    rows += [
        [r["time"], r["source"], r["event"], r["region"], r["error"], r["source_ip"]]
        for r in lookup_events(cloudtrail, question)
    ]
    region = cloudtrail.meta.region_name
    if len(rows) == 1:
        print(
            f"  LookupEvents ({region}): no events for {question.access_key_id} (yet: CloudTrail delivers"
            " within about 15 minutes; other regions and accounts are not searched)"
        )
        return
    print(f"  LookupEvents ({region}), {len(rows) - 1} events:")
    for line in table(rows):
        print(f"    {line}")


def print_json(decisions: list[Decision], region: str) -> None:
    for decision in decisions:
        record = decision.as_json()
        trail = TrailQuestion.of(decision)
        if trail is not None:
            record["cloudtrail"] = trail.as_json(region)
        # ensure_ascii: control characters from the log come out as \u escapes.
        print(json.dumps(record, ensure_ascii=True, sort_keys=True))
