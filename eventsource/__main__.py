"""The command line: `python -m eventsource URL` prints a stream's events;
`python -m eventsource --demo` runs the embedded demo."""

from __future__ import annotations

import argparse
import sys

from ._errors import EventSourceError
from ._source import EventSource


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="eventsource", description="Print the events of a Server-Sent Events stream."
    )
    parser.add_argument("url", nargs="?", help="the stream's URL")
    parser.add_argument("--demo", action="store_true", help="stream from an embedded server")
    parser.add_argument("-n", "--max-events", type=int, help="stop after N events")
    parser.add_argument("--no-reconnect", action="store_true", help="stop when the stream ends")
    args = parser.parse_args(argv)
    if args.demo:
        from ._demo import run_demo

        return run_demo()
    if not args.url:
        parser.error("give a URL, or --demo")
    count = 0
    try:
        with EventSource(args.url, reconnect=not args.no_reconnect) as source:
            for event in source:
                print(f"{event.type}\t{event.id}\t{event.data}", flush=True)
                count += 1
                if args.max_events is not None and count >= args.max_events:
                    break
    except EventSourceError as exc:
        print(f"error: {exc} ({args.url})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
