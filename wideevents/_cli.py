"""The ``wideevents`` command: ``demo``, ``query``, ``tail``.

``wideevents --version`` prints ``wideevents <version>``; ``wideevents`` alone prints the
help, which lists the commands, and exits 0 (as ``pip`` does); an unknown command or option
is a usage error (exit 2, argparse's convention).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from ._core.terminal import escape
from ._errors import ConfigurationError
from ._version import __version__

_EXTRA_FOR = {"duckdb": "query", "fastapi": "demo", "uvicorn": "demo", "httpx": "demo",
              "opentelemetry.proto": "otlp", "matplotlib": "report"}


def _missing_extra(exc: ModuleNotFoundError) -> str | None:
    name = exc.name or ""
    for module, extra in _EXTRA_FOR.items():
        if name == module or name.startswith(module + "."):
            return extra
    return None


class _Parser(argparse.ArgumentParser):
    """argparse echoes what was typed (``unrecognized arguments: ...``): shown escaped.
    Subcommand parsers are of the same class (``add_subparsers`` uses the parent's)."""

    def error(self, message: str) -> NoReturn:
        super().error(escape(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wideevents",
        description="Wide events for ML services: run the demo, query and tail event files.",
    )
    parser.add_argument("--version", action="version", version=f"wideevents {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from ._demo import add_demo_parser

    add_demo_parser(sub)
    try:
        from .query._cli import add_query_parser, add_tail_parser
    except ImportError:  # the query CLI is not part of this build
        pass
    else:
        add_query_parser(sub)
        add_tail_parser(sub)
        from .query import _analysis_cli  # issue 19

        _analysis_cli.add_compare_parser(sub)
        _analysis_cli.add_drift_parser(sub)
        _analysis_cli.add_calibration_parser(sub)
        from .query._report_cli import add_report_parser  # issue 20

        add_report_parser(sub)
    from .sinks._prometheus._rules import add_prometheus_parser  # issue 21

    add_prometheus_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `wideevents` alone: show what it can do
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as exc:
        extra = _missing_extra(exc)
        if extra is None:
            raise
        print(f"wideevents {args.command}: needs the '{extra}' extra "
              f"(missing module {exc.name!r}); install it with: pip install 'wideevents[{extra}]'",
              file=sys.stderr)
        return 2
    except ConfigurationError as exc:  # messages quote file names, filters: shown escaped
        print(f"wideevents {args.command}: {escape(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
