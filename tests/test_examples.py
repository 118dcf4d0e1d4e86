"""Every gallery example (examples/plot_*.py) runs to the end in quick mode and draws a figure.

The documentation build runs them (CI's ``make docs``: sphinx-gallery fails on an example that
raises, ``docs/sphinxext/gallery_check.py`` on one that draws no figure), so ``make test`` does
not run them a second time: ``pytest -m examples`` runs them without building the docs.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))
sys.path.insert(0, str(ROOT / "docs" / "sphinxext"))
import gallery_check  # noqa: E402

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


def test_the_docs_build_names_the_examples_without_a_figure(tmp_path):
    examples, images = tmp_path / "examples", tmp_path / "images"
    examples.mkdir()
    images.mkdir()
    for name in ("plot_a", "plot_b", "helper"):
        (examples / f"{name}.py").write_text("")
    (images / "sphx_glr_plot_a_001.png").write_bytes(b"")
    assert gallery_check.examples_without_figure(examples, images) == ["plot_b.py"]


@pytest.mark.examples
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
