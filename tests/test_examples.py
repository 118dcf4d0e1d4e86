"""Every gallery example (examples/plot_*.py) runs to the end in quick mode and draws a figure."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("plot_*.py"))

# Run the script as __main__, then fail unless it left at least one matplotlib figure open.
_RUNNER = """
import runpy, sys
import matplotlib.pyplot as plt
runpy.run_path(sys.argv[1], run_name="__main__")
if not plt.get_fignums():
    sys.exit(f"{sys.argv[1]} drew no figure")
"""


def test_the_gallery_has_examples():
    assert len(EXAMPLES) >= 7, [p.name for p in EXAMPLES]


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs_in_quick_mode(script, tmp_path):
    env = {**os.environ, "SK_DML_QUICK": "1", "MPLBACKEND": "Agg"}
    # The quick runs train tiny networks, for which one thread is as fast as several and does
    # not fight a busy machine for its cores.
    env.setdefault("OMP_NUM_THREADS", "1")
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(script)],
        cwd=tmp_path,  # anything an example writes lands in a throwaway folder
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, (
        f"{script.name} exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-2000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    )
