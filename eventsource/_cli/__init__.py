"""The command line: ``eventsource URL`` prints a stream's events as they arrive.

Exit codes: 0 the run ended normally (204 No Content, ``-n`` reached, an
``--until`` / ``--until-data`` event, the end of the stream with
``--no-reconnect``, ``--timeout`` after the stream had opened, stdout closed by
its reader); 1 the stream failed (one ``error:`` line on stderr); 2 a usage
error (argparse's, or one ``error:`` line: a URL that is not absolute
http(s), a --cacert file that cannot be read, --http2 without h2); 130 Ctrl-C.

The modules: _args (the parser), _output (the formats), _session (one run) and
_demo (``--demo``). This module imports them (_output and _session once the
arguments are parsed, _demo only for ``--demo``); none of them imports this
one, so the imports form no cycle.

``--version`` and ``--help`` exit while the arguments are parsed: before
anything imports httpx, httpcore or anyio (1 s and more on a loaded machine),
so they answer at once.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .._lazy import exports
from ._args import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    build_parser,
    check_http2,
    silence_stdout,
    source_options,
    tls_verify,
)

if TYPE_CHECKING:
    from ._output import Printer
    from ._session import Session

__all__ = ["Printer", "Session", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # --version, --help: exit here
    except BrokenPipeError:
        # --version or --help to a reader gone away (`| head -c1`): Python
        # 3.10's argparse lets the error through (3.11's ignores it).
        silence_stdout()
        return EXIT_OK
    try:
        from ._output import Printer, tolerant
        from ._session import Session

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
        try:
            verify = tls_verify(args)
            if args.http2:
                check_http2()
        except ValueError as exc:
            return _usage_failure(str(exc))
        printer = Printer.for_stream(sys.stdout, args.format, args.color, json_data=args.json_data)
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
            verify=verify,
            http2=args.http2,
            until_types=args.until_types,
            until_data=args.until_data,
            source_options=options,
        )
        return session.run()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _usage_failure(text: str) -> int:
    """One ``error:`` line on stderr; the exit code of a usage error."""
    from ._output import Style, use_colour

    style = Style(use_colour(sys.stderr))
    sys.stderr.write(f"{style.paint('error:', '1;31')} {' '.join(text.split())}\n")
    sys.stderr.flush()
    return EXIT_USAGE


__getattr__, __dir__ = exports(globals(), {"Printer": "._output", "Session": "._session"}, __all__)
