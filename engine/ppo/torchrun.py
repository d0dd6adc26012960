"""``python -m engine.ppo.torchrun ...``: torchrun (``torch.distributed.run``, the same arguments) as
the Runs page and ``launch`` start a distributed job, with a failed rank told in one line.

torchrun reports a rank that exited non-zero by raising ``ChildFailedError`` out of its ``main``:
forty lines of torchrun's own traceback and summary box in the job's log, under the rank's own
one-line ``error: ...``, and exit code 1 whatever the rank's was. Here the summary is one line after
the rank's error and the exit code is the failed rank's (2 for a bad input, as a one-process job).
A user who runs ``torchrun ... -m engine ppo`` by hand gets torchrun's own report, unchanged.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    # its "failed (exitcode: N) local_rank: R" log line says what our one line says below
    logging.getLogger("torch.distributed.elastic.multiprocessing.api").setLevel(logging.CRITICAL)
    try:
        torchrun_main(None if argv is None else list(argv))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        print(
            f"torchrun: rank {rank} (pid {failure.pid}) exited with code {failure.exitcode}", file=sys.stderr
        )
        return failure.exitcode if failure.exitcode > 0 else 1  # < 0: killed by a signal
    return 0


if __name__ == "__main__":
    sys.exit(main())
