"""Run one command and report its wall time, CPU time and peak RSS.

The benchmark harness is a large Python process (it also runs the latency
proxy). Linux counts the pages a child shares with its parent until exec in
the child's peak RSS, so a tool started straight from the harness reads as
~200 MB whatever it really uses. Started from this small process instead, the
figure is the tool's own.

    python -S launch.py RESULT_FILE COMMAND [ARG ...]
"""

import os
import resource
import sys
import time


def main() -> int:
    result_path, command = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status = os.waitpid(pid, 0)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = os.waitstatus_to_exitcode(status)
    with open(result_path, "w") as result:
        result.write(f"{wall} {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss / 1024} {code}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
