"""The ``iopo-eval`` command line. Each subcommand lives in ``iopo_eval.commands.<name>`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking the parsed
arguments and returning an exit code."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from iopo_eval import __version__

# Order is the order shown in --help.
COMMAND_MODULES = [
    "run",
    "judge",
    "score",
    "data",
    "leaderboard",
    "gate",
    "train",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iopo-eval",
        description="Measure and improve complex instruction following (TRACE, IFEval, CFBench, ComplexBench).",
    )
    parser.add_argument("--version", action="version", version=f"iopo-eval {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"iopo_eval.commands.{name}")
            module.register(sub)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == "iopo_eval":
                raise  # a missing module of our own is a bug, not an optional extra
            _register_unavailable(sub, name, exc)
    return parser


def _register_unavailable(sub: argparse._SubParsersAction, name: str, exc: ModuleNotFoundError) -> None:
    """A command whose optional dependencies are not installed still shows up, and says what to install."""
    extra = {"train": "training"}.get(name, "dev")
    message = f"iopo-eval {name} needs the package {exc.name!r}: pip install 'iopo-eval[{extra}]'"
    p = sub.add_parser(name, help=f"(unavailable: {message})", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)

    def unavailable(_: argparse.Namespace) -> int:
        print(message, file=sys.stderr)
        return 2

    p.set_defaults(func=unavailable)


def _user_errors() -> tuple[type[Exception], ...]:
    from iopo_eval.data.store import DataError
    from iopo_eval.judges.config import JudgeConfigError
    from iopo_eval.results import ResultsError
    from iopo_eval.scoring.cfbench import CountingError

    return (DataError, ResultsError, JudgeConfigError, FileNotFoundError, CountingError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except _user_errors() as exc:
        # Bad input (a data file, a results file, a judge config): the message names it; no traceback.
        if args.verbose:
            raise
        print(f"iopo-eval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and a rerun resumes from the cache", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
