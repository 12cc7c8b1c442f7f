"""The stsvend command: credential_process client, grants as code, local stack."""

__version__ = "0.1.0"
