"""The stsvend command: credential_process client, grants as code, local stack."""

# The one source of the version: pyproject.toml reads it from here.
__version__ = "0.1.0"
# How stsvend writes a UTC time: RFC 3339, whole seconds, "Z".
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
