"""What works from `pip install .`: the API client, request signing, the credential cache and the
`credentials`, `exec`, `roles` and `whoami` commands. Nothing here imports checkout/, local/ or
chalicelib."""
