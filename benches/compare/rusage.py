"""Runs a command and writes the command's own wall time (from fork to exit), CPU time and
peak RSS, as JSON, to the file named by the first argument: `rusage.py OUT.json CMD
[ARGS...]`. Exits with the command's status.

run.py starts every measured process through this launcher. Linux carries a process's
peak RSS across `exec`: a child of run.py (which holds pyarrow and the outputs it has
read, 110 MiB and more) reported at least that much as its own peak, whatever it used.
This launcher imports nothing large, so the peak it reports is the command's.

SIGTERM and SIGINT are passed on to the command, so a server started this way can be
stopped as if it were started directly.
"""

import json
import os
import signal
import sys
import time


def main() -> None:
    out, cmd = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))
    _, status, ru = os.wait4(pid, 0)  # retried after a signal (PEP 475)
    wall = time.perf_counter() - started
    with open(out, "w") as f:
        json.dump({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                   "peak_rss_kib": ru.ru_maxrss}, f)
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
