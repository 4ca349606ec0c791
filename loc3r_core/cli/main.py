"""Entry point of the `loc3r` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from loc3r_core import __version__
from loc3r_core.errors import Loc3rError


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line (`loc3r data generate: error: ...`), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from loc3r_core.cli import data, maps, runtime, train

    parser = OneLineParser(prog="loc3r", description="Loc3R-VLM for robots: spatial memory from one camera.")
    parser.add_argument("--version", action="version", version=f"loc3r {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=OneLineParser)
    data.register(commands)
    train.register(commands)
    runtime.register(commands)
    maps.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except Loc3rError as exc:
        print(f"loc3r: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a full disk, a missing permission, a path that is not what it should be
        where = f": {exc.filename}" if exc.filename else ""
        print(f"loc3r: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("loc3r: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
