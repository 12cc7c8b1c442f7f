"""The API's answers, read: a JSON object on success; otherwise the service's error as a
CommandError with the exit status of the one table (docs/client.md):

    0  success
    1  anything else: an unexpected answer, an internal error of the service, a local failure
    2  usage or a bad request: no or malformed API URL, a server id naming another host, a
       malformed --tag, HTTP 400 and 413
    3  not authenticated or denied: no ambient AWS credentials, HTTP 401 and 403, and
       502 AssumeRoleDenied (STS refused the role: a denial, not an outage)
    4  service unavailable or unreachable: HTTP 503 and 429, other 502 and 504 from the gateway,
       connection errors and timeouts (after one retry for connection errors and 503)

Text from the answer is shown one line at a time, escaped (stsvend.terminal); never a secret.
"""

from __future__ import annotations

from stsvend.client.cache import Answer, answer_problem
from stsvend.client.transport import MAX_ANSWER_BYTES, HttpAnswer
from stsvend.contract import exit_status
from stsvend.errors import EXIT_OTHER, CommandError
from stsvend.terminal import aws_message, one_line

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: the cache hit loads this
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

DEFAULT_RETRY_AFTER_SECONDS = 1.0
MAX_RETRY_AFTER_SECONDS = 10.0
NOT_AUTHENTICATED_HINT = (
    " -- check that your ambient AWS credentials are valid and unexpired, that this machine's"
    " clock is right, and that the server answers as this API URL (its STSVEND_SERVER_ID lists"
    " it) and verifies proofs with the STS endpoint and region you sign for"
    " (AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL, --region)"
)


def retry_after(headers: Mapping[str, str]) -> float:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_RETRY_AFTER_SECONDS
    if seconds != seconds:  # NaN
        return DEFAULT_RETRY_AFTER_SECONDS
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def decode_answer(answer: HttpAnswer) -> Answer:
    if len(answer.body) > MAX_ANSWER_BYTES:
        raise CommandError("InvalidAnswer", "the service's answer is too large", EXIT_OTHER)
    import json

    try:
        payload = json.loads(answer.body) if answer.body else None
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can read
        payload = None
    if 200 <= answer.status < 300:
        if not isinstance(payload, dict):
            raise CommandError(
                "InvalidAnswer", f"HTTP {answer.status} without a JSON object", EXIT_OTHER
            )
        return payload
    raise service_error(answer.status, payload)


def checked_credentials(answer: Answer, now: float) -> Answer:
    """A vend's answer, if it holds credentials fit to cache and print (cache.answer_problem)."""
    problem = answer_problem(answer, now)
    if problem is not None:
        # The message never quotes a secret.
        raise CommandError("InvalidAnswer", problem, EXIT_OTHER)
    return answer


def service_error(status: int, payload: Any) -> CommandError:
    fields = payload if isinstance(payload, dict) else {}
    code = fields.get("Code")
    message = fields.get("Message") or fields.get("message")  # API Gateway says "message"
    request_id = fields.get("RequestId")
    # API Gateway's answer to a bad signature quotes the canonical request, the session token in it.
    text = one_line(aws_message(message), limit=500) if isinstance(message, str) and message else ""
    text = text or f"HTTP {status}"
    if status == 401:
        text += NOT_AUTHENTICATED_HINT
    return CommandError(
        one_line(code, limit=64) if isinstance(code, str) and code else f"HTTP{status}",
        text,
        exit_status(status, code),
        one_line(request_id, limit=100) if isinstance(request_id, str) else "",
    )


