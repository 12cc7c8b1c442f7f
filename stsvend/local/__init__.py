"""The local stack: the AWS emulator and the stsvend API on 127.0.0.1 (`stsvend local up|demo`)."""

from __future__ import annotations

import argparse


def cmd_local(args: argparse.Namespace) -> int:
    from stsvend.local.command import run

    return run(args.action)
