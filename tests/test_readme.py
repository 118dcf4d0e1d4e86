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


# ------------------------------------------------- what the docs count, from the registries
DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = [README, *(DOCS / page for page in ("index.rst", "getting_started.rst", "user_guide.rst"))]
NUMBERS = "one two three four five six seven eight nine ten eleven twelve".split()
COUNTED = re.compile(
    rf"\b({'|'.join(NUMBERS)}|\d+) (?:named |registered |built-in )?(losses|embedders)\b", re.I
)


def registry_counts() -> dict[str, set[int]]:
    """How many losses (all, and of each kind of supervision) and named embedders there are."""
    from sk_dml.criteria import loss_names
    from sk_dml.persistence import ESTIMATORS  # every embedder, the tuple ones included
    from sk_dml.supervision import KINDS

    losses = {len(loss_names()), *(len(loss_names(kind)) for kind in KINDS)}
    embedders = [name for name in ESTIMATORS if not name.startswith("_")]
    return {"losses": losses, "embedders": {len(embedders), len(embedders) - 1}}  # w/o Metric


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_count_of_losses_or_embedders_is_the_registrys(page):
    counts = registry_counts()
    for number, what in COUNTED.findall(page.read_text(encoding="utf-8")):
        value = int(number) if number.isdigit() else NUMBERS.index(number.lower()) + 1
        assert value in counts[what.lower()], f"{page.name}: '{number} {what}'"


def test_the_readme_names_every_loss_and_embedder():
    import sk_dml
    from sk_dml.criteria import get_loss_class, loss_names
    from sk_dml.persistence import ESTIMATORS  # every embedder, the tuple ones included

    text = README.read_text(encoding="utf-8")
    table = text.split("## Losses", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(\w+)", table)) | set(re.findall(r"loss=(\w+)\(", table))
    public = {name: cls for name, cls in ESTIMATORS.items() if not name.startswith("_")}
    assert set(public) <= named  # every embedder, MetricEmbedder included
    by_loss = {getattr(cls, "_loss_class", None): name for name, cls in public.items()}
    for loss in loss_names():
        cls = get_loss_class(loss)
        assert by_loss.get(cls) in named or cls.__name__ in named, loss
    assert {"PairEmbedder", "TripletConstraintEmbedder"} <= set(public)
    assert set(public) <= set(sk_dml.__all__)
