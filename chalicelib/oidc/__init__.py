"""OIDC callers: CI jobs that hold an OIDC token from their CI system instead of AWS credentials.

`config` (issuers and grants, pure) is what the grants file, the table and the checkout share;
`verify` (PyJWT with its crypto extra) and `vend` are imported only when `POST /oidc/credentials`
is served, so the SigV4 routes never load a JOSE library or `cryptography`.
"""
