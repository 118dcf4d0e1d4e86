"""Every Python block of README.md runs as written, on fewer rows and epochs to stay quick."""

import dataclasses
import re
from pathlib import Path

import pytest
import sklearn.datasets

import sk_dml._training

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


@pytest.fixture
def quick(monkeypatch, tmp_path):
    """Digits cut to 300 rows, every fit cut to one epoch, and a throwaway working folder."""
    load_digits = sklearn.datasets.load_digits

    def few_digits(**kwargs):
        X, y = load_digits(**kwargs)
        return X[:300], y[:300]

    run = sk_dml._training.Trainer.run

    def one_epoch(self, X, y, settings, *args, **kwargs):
        return run(self, X, y, dataclasses.replace(settings, max_epochs=1), *args, **kwargs)

    monkeypatch.setattr(sklearn.datasets, "load_digits", few_digits)
    monkeypatch.setattr(sk_dml._training.Trainer, "run", one_epoch)
    monkeypatch.chdir(tmp_path)  # the scale-out block writes checkpoints to ckpt/


def test_the_readme_has_its_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs_as_written(block, quick):
    exec(compile(block, str(README), "exec"), {"__name__": "__main__"})
