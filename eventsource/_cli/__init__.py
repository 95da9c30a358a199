"""The command line: ``eventsource URL`` prints a stream's events as they arrive.

Exit codes: 0 the run ended normally (204 No Content, ``-n`` reached, the end of
the stream with ``--no-reconnect``, ``--timeout`` after the stream had opened,
stdout closed by its reader); 1 the stream failed (one ``error:`` line on
stderr); 2 a usage error (argparse); 130 Ctrl-C.

The modules: _args (the parser), _output (the formats), _session (one run) and
_demo (``--demo``). This module imports them (_demo only for ``--demo``); none
of them imports this one, so the imports form no cycle.
"""

from __future__ import annotations

import sys

from ._args import build_parser, source_options
from ._output import Printer, tolerant
from ._session import EXIT_INTERRUPTED, Session

__all__ = ["Printer", "Session", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.demo:
            if args.url:
                parser.error("--demo takes no URL")
            from ._demo import run_demo

            return run_demo()
        if not args.url:
            parser.error("give a URL, or --demo")
        try:
            options = source_options(args)
        except (OSError, ValueError) as exc:
            parser.error(str(exc))
        printer = Printer.for_stream(sys.stdout, args.format, args.color)
        if printer.format == "pretty":
            tolerant(sys.stdout)
        session = Session(
            args.url,
            printer=printer,
            err=sys.stderr,
            verbose=args.verbose,
            types=args.types,
            max_events=args.max_events,
            timeout=args.timeout,
            insecure=args.insecure,
            source_options=options,
        )
        return session.run()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
