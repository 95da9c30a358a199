"""The full-size reliability runs, by their own command.

    python -m tests.chaos.run_full            # chaos: 100,000 events, 5,000 faults per mode
    python -m tests.chaos.run_full --hostile  # + the 1 GB RSS run and the long fuzz run
    python -m tests.chaos.run_full --hostile-only

Sets EVENTSOURCE_CHAOS=full (tests/chaos/conftest.py), EVENTSOURCE_FULL=1 (the
``slow`` tests of tests/test_hostile.py) and HYPOTHESIS_PROFILE=long (the fuzz
test's long profile), runs pytest with ``-s`` so each run prints its figures, and
prints a summary table of the chaos figures at the end. Extra arguments after
``--`` go to pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        index = argv.index("--")
        argv, extra = argv[:index], argv[index + 1 :]
    hostile = "--hostile" in argv or "--hostile-only" in argv
    chaos = "--hostile-only" not in argv
    runs = []
    if chaos:
        runs.append(["-m", "chaos", "tests/chaos"])
    if hostile:
        runs.append(["-m", "slow", "tests/test_hostile.py"])
        runs.append(["tests/test_hostile.py::test_fuzz_mixed_streams_random_chunks_small_limits"])
    code = 0
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "chaos.jsonl")
        env = dict(
            os.environ,
            EVENTSOURCE_CHAOS="full",
            EVENTSOURCE_FULL="1",
            HYPOTHESIS_PROFILE="long",
            EVENTSOURCE_CHAOS_REPORT=report,
        )
        for run in runs:
            command = [sys.executable, "-m", "pytest", "-s", "-v", *run, *extra]
            print("+", " ".join(command), flush=True)
            code = subprocess.call(command, env=env) or code
        if os.path.exists(report):
            print(
                "\nmode      stack   events   delivered  faults  503s  reconnects  read-timeouts"
                "  time"
            )
            with open(report, encoding="utf-8") as file:
                for line in file:
                    f = json.loads(line)
                    print(
                        f"{f['mode']:<8} {f.get('stack', 'httpx'):<7} {f['events']:>7}"
                        f" {f['delivered']:>10} {f['faults']:>7}"
                        f" {f['responses_503']:>5} {f['reconnects']:>11} {f['read_timeouts']:>14}"
                        f" {f['seconds']:>6.1f}s"
                    )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
