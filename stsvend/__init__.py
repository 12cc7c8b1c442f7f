"""The stsvend command: credential_process client, grants as code, local stack; and the library
(`stsvend.session`, `stsvend.botocore_session`, `stsvend.vend`: see stsvend.client.library)."""

# typing.TYPE_CHECKING without importing typing: `import stsvend` is on every cache hit's path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from stsvend.client.library import CommandError, VendedCredentials, botocore_session, session, vend
    from stsvend.constants import TIMESTAMP_FORMAT, __version__

__all__ = [
    "TIMESTAMP_FORMAT", "CommandError", "VendedCredentials", "__version__", "botocore_session",
    "session", "vend",
]
_LIBRARY = frozenset(("CommandError", "VendedCredentials", "botocore_session", "session", "vend"))
# The version and the time format live in stsvend.constants, which imports nothing: the package's
# modules take them from there (none imports this root), and a cache hit never loads it.
_CONSTANTS = frozenset(("TIMESTAMP_FORMAT", "__version__"))


def __getattr__(name: str) -> object:
    if name in _CONSTANTS:
        from stsvend import constants

        return getattr(constants, name)
    # The library (and botocore with it) loads on first use, never on the command's cache hit.
    if name in _LIBRARY:
        from stsvend.client import library

        return getattr(library, name)
    raise AttributeError(f"module 'stsvend' has no attribute {name!r}")
