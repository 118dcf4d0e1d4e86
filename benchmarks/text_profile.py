"""Where the time of a fit with text columns goes: the share of each part of a fit, with the
embedding tables trained by ``torch.optim.SparseAdam`` (sk_dml before LazyAdam) and by
sk_dml's ``LazyAdam`` (the same update), side by side in one process.

    python benchmarks/text_profile.py                          # 10,000 records, 3 epochs
    python benchmarks/text_profile.py --records 2000 --epochs 1 --repeats 1   # smoke run

Data: the synthetic entity-resolution table of ``benchmarks/supervision.py`` (``er_table``:
``--records`` clean person records and their corrupted copies; sk_dml reads five of its
string columns as text, one as a category, two as numbers) and its training pairs
(``er_pairs`` on a random half of the entities, seed 0). ``PairEmbedder`` in the user
guide's entity-resolution setting (256-D, normalised, no held-out pairs), ``--epochs``
epochs, 1 torch thread, ``random_state=0``. After a short fit of each (warm-up, not counted),
the two optimizers alternate, ``--repeats`` fits each; a variant's shares are of the sum of
its fits.

The parts are timed by wrapping the functions that do them (wall clock): the schema
(learning the columns' kinds, levels and n-gram statistics) and the encoding of the table
(hashing every cell's character n-grams into bucket ids: done once per fit, not per batch);
per step, the forward pass (network and loss), the backward pass, AdamW's step on the dense
weights and the embedding tables' optimizer step on their sparse gradients; "rest" is the
fit's time outside those (batch sampling, indexing, zeroing the gradients, the input layer's
statistics and PCA start, the end's checks).

Writes benchmarks/results/text_training_profile.md (``--output`` to change).
"""

from __future__ import annotations

import argparse
import functools
import platform
import sys
import time
import warnings
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import supervision  # noqa: E402  (the synthetic table and its pairs)

import sk_dml  # noqa: E402
from sk_dml import _embedder, _objectives, _training, tabular  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PARTS = ["schema", "encoding", "forward", "backward", "dense step", "table step", "rest"]
VARIANTS = {"SparseAdam": torch.optim.SparseAdam, "LazyAdam": _training.LazyAdam}


def timed(totals: dict, part: str, function):
    """``function`` adding its wall time to ``totals[part]`` (the outermost call only)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if totals.get("_inside"):
            return function(*args, **kwargs)
        totals["_inside"] = True
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[part] += time.perf_counter() - start
            totals["_inside"] = False

    return wrapper


def timed_step(totals: dict, step):
    """An optimizer's ``step`` timed as the dense weights' (AdamW) or the tables' (other)."""

    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        part = "dense step" if isinstance(self, torch.optim.AdamW) else "table step"
        start = time.perf_counter()
        try:
            return step(self, *args, **kwargs)
        finally:
            totals[part] += time.perf_counter() - start

    return wrapper


def er_data(records: int):
    table, entity = supervision.er_table(records)
    key = table["last_name"].to_numpy(dtype=object)[:records]
    rng = np.random.default_rng(0)
    chosen = rng.permutation(records)[: records // 2]
    pairs, match = supervision.er_pairs(entity, chosen, key, rng)
    return table, pairs, match


def profile_fit(table, pairs, match, epochs: int, optimizer, totals: dict):
    """Fit with ``optimizer`` for the embedding tables, adding each part's time to
    ``totals``; returns the fitted embedder."""
    patches = [
        (_embedder, "learn_schema", "schema"),
        (tabular.TableSchema, "encode", "encoding"),
        (_objectives.TupleObjective, "forward", "forward"),
        (torch.Tensor, "backward", "backward"),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    saved += [(cls, "step", cls.step) for cls in (torch.optim.AdamW, optimizer)]
    saved.append((_training, "LazyAdam", _training.LazyAdam))
    try:
        for owner, name, part in patches:
            setattr(owner, name, timed(totals, part, getattr(owner, name)))
        for cls in (torch.optim.AdamW, optimizer):
            cls.step = timed_step(totals, cls.step)
        _training.LazyAdam = optimizer  # what the trainer builds for the tables
        emb = sk_dml.PairEmbedder(
            preprocessor=table, max_epochs=epochs, random_state=0, device="cpu",
            **supervision.ER_SETTING,
        )  # fmt: skip
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            emb.fit(pairs, match)
        totals["total"] += time.perf_counter() - start
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
    totals.pop("_inside", None)
    return emb


def table_step_options(emb, table, n_steps: int = 30) -> dict:
    """The text bags alone (the fitted model's shapes, fresh weights), trained on batches of
    the encoded table's n-gram ids (512 rows: a batch of 256 pairs) with each optimizer: the
    seconds of forward, backward and step over ``n_steps`` steps after 5 of warm-up. The
    dense options give the bags dense gradients and move every row at every step."""
    encoded = torch.as_tensor(emb.schema_.encode([table[c] for c in table.columns]))
    ids = [encoded[:, s].long() for s in emb.schema_.text_slices]
    widths = emb.schema_.text_embedding_dims
    options = {
        "SparseAdam (sparse gradients)": lambda p: torch.optim.SparseAdam(p, lr=1e-3),
        "LazyAdam (sparse gradients)": lambda p: _training.LazyAdam(p, lr=1e-3),
        "AdamW fused (dense gradients)": lambda p: torch.optim.AdamW(p, lr=1e-3, fused=True),
        "AdamW foreach (dense gradients)": lambda p: torch.optim.AdamW(p, lr=1e-3, foreach=True),
    }
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randint(len(encoded), (512,), generator=generator) for _ in range(n_steps)]
    times = {}
    for name, make in options.items():
        sparse = name.endswith("(sparse gradients)")
        torch.manual_seed(0)
        bags = [
            torch.nn.EmbeddingBag(emb.schema_.text_n_buckets + 1, w, mode="sum", padding_idx=0,
                                  sparse=sparse)
            for w in widths
        ]  # fmt: skip
        optimizer = make([bag.weight for bag in bags])
        spent = defaultdict(float)
        for step, rows in enumerate([*batches[:5], *batches]):
            start = time.perf_counter()
            out = torch.cat([bag(part[rows]) for bag, part in zip(bags, ids, strict=True)], 1)
            loss = torch.nn.functional.normalize(out, dim=1)[:, ::3].sum()
            forward = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            backward = time.perf_counter()
            optimizer.step()
            if step >= 5:
                spent["forward"] += forward - start
                spent["backward"] += backward - forward
                spent["step"] += time.perf_counter() - backward
        times[name] = dict(spent)
        print(name, {k: round(v, 3) for k, v in spent.items()}, flush=True)
    return times


def report(results: dict, info: dict, args) -> str:
    lines = [
        "# Where a fit with text columns spends its time",
        "",
        f"`python benchmarks/text_profile.py --records {args.records} --epochs {args.epochs} "
        f"--repeats {args.repeats}` on {date.today()}: {platform.machine()}, 1 torch thread, "
        f"torch {torch.__version__}, sk_dml {sk_dml.__version__}. Measured on a loaded shared "
        "machine (2 cores, other processes running): read the shares and the ratio, not the "
        "seconds. The protocol is in the docstring of benchmarks/text_profile.py.",
        "",
        f"{info['rows']:,} rows, {info['text columns']} text columns, {info['pairs']:,} "
        f"training pairs, {info['epochs']} epochs of {info['steps']:,} steps per fit.",
        "",
        "| part | " + " | ".join(f"share, tables by {v}" for v in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for part in PARTS:
        shares = [f"{t[part] / t['total']:.1%}" for t in results.values()]
        lines.append(f"| {part} | " + " | ".join(shares) + " |")
    sparse, lazy = (results[v]["total"] for v in VARIANTS)
    table_ratio = results["LazyAdam"]["table step"] / results["SparseAdam"]["table step"]
    lines += [
        "",
        f"LazyAdam's table step takes {table_ratio:.2f} of SparseAdam's time; the whole fit "
        f"{lazy / sparse:.2f} of its time. The largest embeddings differ by at most "
        f"{info['max_difference']:.1e} between the two (the same update, summed in another "
        "order).",
    ]
    options = info["options"]
    base = options["SparseAdam (sparse gradients)"]
    lines += [
        "",
        "## The text bags alone, by optimizer",
        "",
        f"The {info['text columns']} text bags of the fitted model's shapes (fresh weights), "
        "trained on batches of 512 encoded rows (a batch of 256 pairs): time of forward + "
        "backward + step and of the step alone, as a ratio to SparseAdam's, measured in the "
        "same process (``table_step_options``). The dense options give the bags dense "
        "gradients: every row moves at every step (Adam's momentum), unlike the lazy update "
        "sk_dml trains them with.",
        "",
        "| optimizer | forward + backward + step | step |",
        "|---|---|---|",
    ]
    for name, spent in options.items():
        total = sum(spent.values()) / sum(base.values())
        lines.append(f"| {name} | {total:.2f} | {spent['step'] / base['step']:.2f} |")
    lines += [
        "",
        "Reading: the hashing of the n-grams is not a per-batch cost (the table is encoded once "
        "per fit; a batch only casts its ids to int64). A lazy step costs the rows a batch "
        "touches, whatever the number of buckets, so fewer buckets would not make it cheaper; "
        "a dense step costs the whole table at every step. LazyAdam keeps SparseAdam's "
        "update (and results), so it replaces it; a fused dense AdamW step is cheaper still "
        "on CPU but changes the update (every row moves) and makes the backward pass dearer.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS / "text_training_profile.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    table, pairs, match = er_data(args.records)
    for optimizer in VARIANTS.values():  # warm-up, not counted
        profile_fit(table, pairs[:2000], match[:2000], 1, optimizer, defaultdict(float))
    results = {name: defaultdict(float) for name in VARIANTS}
    embeddings = {}
    for _ in range(args.repeats):
        for name, optimizer in VARIANTS.items():
            emb = profile_fit(table, pairs, match, args.epochs, optimizer, results[name])
            embeddings[name] = emb.transform(table)
            print(name, {k: round(v, 2) for k, v in results[name].items()}, flush=True)
    for totals in results.values():
        totals["rest"] = totals["total"] - sum(totals[p] for p in PARTS if p != "rest")
    text = [c["column"] for c in emb.schema_.describe() if c["kind"] == "text"]
    info = {
        "rows": len(table),
        "pairs": len(pairs),
        "epochs": emb.n_iter_,
        "text columns": len(text),
        "steps": int(np.ceil(len(pairs) / emb.batch_size)),
        "max_difference": float(np.abs(embeddings["SparseAdam"] - embeddings["LazyAdam"]).max()),
    }
    info["options"] = table_step_options(emb, table)
    text = report(results, info, args)
    print(text)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
