"""The command package's constants, in a module that imports nothing: its version (pyproject.toml
reads it from here) and how stsvend writes a UTC time. Every module takes them from here, never from
the package root, which loads the library (stsvend.client.library) on first use."""

__version__ = "0.3.0"
# How stsvend writes a UTC time: RFC 3339, whole seconds, "Z".
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
