"""The stsvend command: credential_process client, grants as code, local stack; and the library
(`stsvend.session`, `stsvend.botocore_session`, `stsvend.vend`: see stsvend.client.library)."""

# The one source of the version: pyproject.toml reads it from here.
__version__ = "0.2.0"
# How stsvend writes a UTC time: RFC 3339, whole seconds, "Z".
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# typing.TYPE_CHECKING without importing typing: `import stsvend` is on every cache hit's path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from stsvend.client.library import CommandError, VendedCredentials, botocore_session, session, vend

__all__ = [
    "TIMESTAMP_FORMAT", "CommandError", "VendedCredentials", "__version__", "botocore_session",
    "session", "vend",
]
_LIBRARY = frozenset(("CommandError", "VendedCredentials", "botocore_session", "session", "vend"))


def __getattr__(name: str) -> object:
    # The library (and botocore with it) loads on first use, never on the command's cache hit.
    if name in _LIBRARY:
        from stsvend.client import library

        return getattr(library, name)
    raise AttributeError(f"module 'stsvend' has no attribute {name!r}")
