"""The one error type of the `stsvend` command, its exit statuses, and its warnings.

`main()` reports a `CommandError` once, as `stsvend: <Code>: <Message>` on stderr, and exits with
its status. Messages never hold a secret. Only the standard library: the client's cache hit loads it.
"""

import sys

from stsvend.terminal import one_line

EXIT_OTHER = 1
EXIT_USAGE = 2
EXIT_DENIED = 3
EXIT_UNAVAILABLE = 4


class CommandError(Exception):
    """A command cannot go on: `code` names the failure, `message` says what to do about it."""

    def __init__(self, code: str, message: str, exit_status: int = EXIT_OTHER, request_id: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.exit_status = exit_status
        self.request_id = request_id

    def line(self) -> str:
        """What `main()` prints: one printable line, however many the message had."""
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        # A message can quote a name from the environment or a file (a profile name, a path):
        # a control character is shown escaped, never sent to the terminal.
        return one_line(f"stsvend: {self.code}: {self.message}{suffix}")


def warn(message: str) -> None:
    """A warning on stderr, `stsvend: warning: <message>`, one printable line."""
    print(one_line(f"stsvend: warning: {message}"), file=sys.stderr)
