"""The local stack: the AWS emulator and the stsvend API on 127.0.0.1 (`stsvend local up|demo`)."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from stsvend import aws
from stsvend.errors import CommandError

DEV_EXTRAS = ("chalice", "moto")


def cmd_local(args: argparse.Namespace) -> int:
    if args.action == "token":
        from stsvend.local.token import cmd_token

        return cmd_token(args)
    missing = [name for name in DEV_EXTRAS if importlib.util.find_spec(name) is None]
    if missing:
        raise CommandError(
            "MissingDevExtras",
            f"stsvend local needs the dev extras ({', '.join(missing)} not installed): run it with"
            " `make run` from the checkout, or pip install -e '.[dev]' there",
        )
    from stsvend.checkout.checkout import Checkout
    from stsvend.local.up import Terminated

    root = Checkout.open(args.root).root
    try:
        # The emulator's refusals while seeding or demonstrating, as every command reports AWS's.
        with aws.errors():
            if args.action == "up":
                from stsvend.local.up import up

                return up(root)
            from stsvend.local.demo import demo

            return demo(root)
    except Terminated as exc:
        print(f"stsvend local: stopped ({exc})", file=sys.stderr)
        return 130
