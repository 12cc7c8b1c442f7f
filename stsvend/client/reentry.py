"""stsvend run from inside itself, refused before it could do harm:

- recursion: loading stsvend's own ambient credentials ran stsvend again (a profile whose
  credential_process is stsvend itself). The outer run sets RESOLVING_ENV while it loads them; the
  inner run fails at once, before it could wait for the cache lock the outer run holds.
- nesting: `stsvend exec` or `serve` inside the child of `stsvend exec`, which holds the vended
  role's credentials, not the agent's (EXEC_MARKER names the role).

Only the standard library, and nothing of it imported here: the cache hit checks for recursion.
"""

from __future__ import annotations

from stsvend.errors import EXIT_DENIED, EXIT_USAGE, CommandError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: the cache hit loads this
if TYPE_CHECKING:
    from collections.abc import Mapping

# Set while stsvend loads its own ambient credentials (to a marker of the run: see recursion_tag).
RESOLVING_ENV = "STSVEND_RESOLVING_CREDENTIALS"
# Set for the child of `stsvend exec` (the role ARN): a nested exec or serve refuses to run.
EXEC_MARKER = "STSVEND_EXEC"


def recursion_tag(marker: str) -> str:
    """What an stsvend run started while loading credentials says when it refuses: the marker
    tells the run that started it that the profile it loaded runs stsvend (signing.resolve_source)."""
    return f"[stsvend-recursion {marker}]"


def refuse_recursion(env: Mapping[str, str]) -> None:
    marker = env.get(RESOLVING_ENV)
    if marker:
        # The marker comes from the environment: only the form stsvend writes is repeated.
        ours = len(marker) == 32 and marker.isascii() and marker.isalnum()
        tag = f" {recursion_tag(marker)}" if ours else ""
        raise CommandError(
            "NoCredentials",
            "stsvend was run to load its own ambient credentials: the profile it takes them from "
            "must not use stsvend as its credential_process (pass --source-profile NAME naming the "
            f"profile with this machine's own credentials){tag}",
            EXIT_DENIED,
        )


def refuse_nesting(env: Mapping[str, str]) -> None:
    role = env.get(EXEC_MARKER)
    if role:
        raise CommandError(
            "NestedExec",
            f"already inside 'stsvend exec' for {role}: its child has that role's credentials, not "
            f"the agent's, so a nested exec or serve would ask as the vended role. Run it outside, "
            f"or unset {EXEC_MARKER} if that is what you mean",
            EXIT_USAGE,
        )
