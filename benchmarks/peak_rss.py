"""Run a command and report its peak resident set size, measured from outside.

    python benchmarks/peak_rss.py COMMAND [ARGS...]

prints the command's own output, then one last line `{"peak_rss_kb": N, "returncode": R}`, and
exits with the command's exit code. N is `getrusage(RUSAGE_CHILDREN).ru_maxrss` taken here,
after the command ended. The trap this file exists for: Linux carries a process's peak RSS over
`exec`, and Python starts children with vfork, so a child spawned straight from a big process
(the benchmark runner, with a model loaded) reports the parent's peak as its own. This small
process has no such past, so the peak it reports for its one child is the child's.
"""

import json
import resource
import subprocess
import sys

if __name__ == "__main__":
    code = subprocess.call(sys.argv[1:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(json.dumps({"peak_rss_kb": peak, "returncode": code}), flush=True)
    sys.exit(code)
