"""Runs a command and writes the command's own wall time (from fork to exit), CPU time and
peak RSS, as JSON, to the file named by the first argument: `rusage.py OUT.json CMD
[ARGS...]`. Exits with the command's status.

run.py starts every measured process through this launcher. Linux carries a process's
peak RSS across `exec`: a child of run.py (which holds pyarrow and the outputs it has
read, 110 MiB and more) reported at least that much as its own peak, whatever it used.
This launcher imports nothing large, so the peak it reports is the command's.

SIGTERM and SIGINT are passed on to the command, so a server started this way can be
stopped as if it were started directly; a command killed by a signal makes the launcher
end by the same signal.
"""

import json
import os
import signal
import sys
import time


FORWARDED = {signal.SIGTERM, signal.SIGINT}


def main() -> None:
    out, cmd = sys.argv[1], sys.argv[2:]
    # Blocked from before the fork until the handlers are in place, so a SIGTERM that comes
    # early is passed on, not the end of the launcher with its command left running.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        try:
            os.execvp(cmd[0], cmd)
        except OSError as e:
            print(f"rusage.py: cannot run {cmd[0]}: {e}", file=sys.stderr, flush=True)
        os._exit(127)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:  # already exited, not yet reaped
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    _, status, ru = os.wait4(pid, 0)  # retried after a signal (PEP 475)
    wall = time.perf_counter() - started
    # The command is reaped: a late signal has nobody to go to and must not cut the report.
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_IGN)
    with open(out, "w") as f:
        json.dump({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                   "peak_rss_kib": ru.ru_maxrss}, f)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # killed by a signal: end the same way, so the caller sees that signal
        sig = -code
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
            pass
        os.kill(os.getpid(), sig)
        code = 128 + sig  # still here: a signal whose default is not to end a process
    sys.exit(code)


if __name__ == "__main__":
    main()
