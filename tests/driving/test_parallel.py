"""Worker processes: results come back, and a script's own imports are not re-run in each."""

import subprocess
import sys

SCRIPT = """
import os, sys
with open(sys.argv[1], "a") as log:  # one line each time this file is executed
    log.write(f"{__name__}\\n")
from driving.parallel import run_parallel

if __name__ == "__main__":
    pids = []
    run_parallel(os.getpid, [()] * 4, 2, pids.append)
    assert len(pids) == 4 and os.getpid() in pids, pids  # this process works too
    print(len(set(pids)))
"""


def test_workers_do_not_rerun_the_main_script(tmp_path):
    script, log = tmp_path / "main.py", tmp_path / "runs.txt"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(log)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) == 2  # this process and one worker (2 workers in all)
    # Spawned workers would execute the script again as __mp_main__: only the parent ran it.
    assert log.read_text().splitlines() == ["__main__"]
