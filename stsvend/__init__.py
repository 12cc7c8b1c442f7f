"""The stsvend command: credential_process client, grants as code, local stack; and the library
(`stsvend.session`, `stsvend.botocore_session`, `stsvend.vend`: see stsvend.library)."""

__version__ = "0.1.0"

# typing.TYPE_CHECKING without importing typing: `import stsvend` is on every cache hit's path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from stsvend.library import CommandError, VendedCredentials, botocore_session, session, vend

__all__ = ["CommandError", "VendedCredentials", "__version__", "botocore_session", "session", "vend"]
_LIBRARY = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> object:
    # The library (and botocore with it) loads on first use, never on the command's cache hit.
    if name in _LIBRARY:
        from stsvend import library

        return getattr(library, name)
    raise AttributeError(f"module 'stsvend' has no attribute {name!r}")
