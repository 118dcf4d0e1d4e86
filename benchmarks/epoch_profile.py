"""Where one epoch of ``TripletEmbedder.fit`` spends its time, against the network's floor.

For each batch size and mining rule, in one process (2 torch threads, letter-sized data as
in ``throughput.py``: 14,000 rows x 16 features, 26 classes; the default 512x512 -> 64 MLP):

- **fit**: ``TripletEmbedder(mining=..., batch_size=B, early_stopping=False)`` fitted for
  ``--epochs`` epochs. The epoch inside ``fit`` is the trainer's run (``Trainer.run``:
  drawing each epoch's batches, the steps, the epoch-end checks, the hooks) over the number
  of epochs; the rest of ``fit`` is its fixed cost (validation, schema, encoding, network and
  optimizer construction).
- **parts**: during that fit, its epochs run step by step with a clock between the parts
  (a copy of ``sk_dml._training._train_one_epoch`` with clocks, patched in): gathering a
  batch, the input layer, the network's forward pass, the loss's forward pass (distances,
  mining and the loss), the loss's backward pass (to the embeddings), the network's backward
  pass, zeroing the gradients and the optimizer's step, the loss's bookkeeping, and the
  epoch-end check of the weights. On the CPU every kernel runs when it is called, so a
  part's clock time is its cost. The epoch minus the parts' sum is "sampler, hooks and the
  rest" (drawing the batches, the early-stopping bookkeeping, the progress bar).
- **floor**: the same MLP trained by a plain loop (``throughput.floor_seconds``) with torch's
  default AdamW on batches of ``B`` rows gathered by index from a random permutation, with a
  trivial loss (``emb.square().mean()``): no sampler, no mining, no metric loss. "floor,
  pre-sliced" skips the gathering too.
- **loss ops**: the torch operators that take most of the loss's forward and backward, from
  ``torch.profiler`` (self CPU time).

    python benchmarks/epoch_profile.py                 # B = 256 and 1024; ~4 minutes
    python benchmarks/epoch_profile.py --compare-with ../old-checkout   # ~9 minutes
    python benchmarks/epoch_profile.py --batch-sizes 256 --minings semihard --epochs 2 --rounds 1

Writes benchmarks/results/epoch_profile.md and .csv (``--output`` to change the stem);
``--compare-with CHECKOUT`` profiles each case with the sk_dml of another checkout too (a
git worktree of an older commit), in a subprocess run just before it, and adds a comparison:
the machine's speed drifts over minutes, so the two are measured side by side, case by
case, and compared as multiples of their own floor.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from datetime import date
from pathlib import Path
from unittest import mock

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from throughput import floor_seconds, letter_like  # noqa: E402

import sk_dml  # noqa: E402
from sk_dml import TripletEmbedder, _training  # noqa: E402
from sk_dml.nets import dropout_generator  # noqa: E402
from sk_dml.sampling import ClassBalancedBatchSampler  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PARTS = [
    "gather", "input layer", "network forward", "loss forward", "loss backward",
    "network backward", "optimizer", "bookkeeping", "epoch-end check",
]  # fmt: skip


def profiled_fit(X, y, batch_size, mining, epochs) -> tuple:
    """A fit whose epochs are timed part by part: (estimator, fit seconds, run seconds,
    {part: seconds over all epochs})."""
    totals, runs = defaultdict(float), []
    run = _training.Trainer.run

    def timed_run(*args, **kwargs):
        start = time.perf_counter()
        run(*args, **kwargs)
        runs.append(time.perf_counter() - start)

    emb = TripletEmbedder(
        mining=mining, batch_size=batch_size, max_epochs=epochs, early_stopping=False,
        n_iter_no_change=epochs + 1, random_state=0,
    )  # fmt: skip
    patches = {"_train_one_epoch": functools.partial(staged_epoch, totals)}
    with (
        mock.patch.multiple(_training, **patches),
        mock.patch.object(_training.Trainer, "run", timed_run),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        emb.fit(X, y)
        elapsed = time.perf_counter() - start
    assert emb.n_iter_ == epochs
    return emb, elapsed, runs[0], totals


def staged_epoch(totals, objective, X, y, batches, optimizers, group, generator) -> float:
    """``sk_dml._training._train_one_epoch`` (one process, no group) with a clock between the
    parts, each part's seconds added to ``totals``."""
    assert group is None
    module, criterion = objective.module, objective.criterion
    objective.train()
    clock = time.perf_counter()

    def lap(part):
        nonlocal clock
        now = time.perf_counter()
        totals[part] += now - clock
        clock = now

    total = torch.zeros((), dtype=torch.float64, device=X.device)
    for batch in batches:
        index = torch.from_numpy(batch).to(X.device, non_blocking=True)
        rows, codes = X[index], y[index]
        lap("gather")
        with dropout_generator(generator):
            hidden = module.inputs(rows)
            lap("input layer")
            embeddings = module.body(hidden)
            lap("network forward")
        leaf = embeddings.detach().requires_grad_()
        loss = criterion(leaf, codes)
        lap("loss forward")
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lap("loss backward")
        embeddings.backward(leaf.grad)
        lap("network backward")
        for optimizer in optimizers:
            optimizer.step()
        lap("optimizer")
        total += loss.detach()
        lap("bookkeeping")
    for weight in objective.parameters():
        total += (weight.detach() - weight.detach()).sum()
    mean = float(total) / max(len(batches), 1)
    lap("epoch-end check")
    return mean


def floor_epoch(X, batch_size, epochs, presliced: bool) -> float:
    """Seconds per epoch of the plain loop (``throughput.floor_seconds``), after a warm-up."""
    cpu = torch.device("cpu")
    floor_seconds(X[:2000], batch_size, 1, cpu, presliced)
    return floor_seconds(X, batch_size, epochs, cpu, presliced) / epochs


def loss_ops(emb, X, y, batch_size, top) -> list[tuple[str, float]]:
    """The ``top`` operators of the loss's forward + backward by self CPU time (ms per step)."""
    criterion = emb._trainer.objective.criterion
    sampler = ClassBalancedBatchSampler(y, batch_size, emb.samples_per_class, random_state=1)
    batches = list(sampler)[:20]
    with torch.no_grad():
        inputs = [
            (emb._trainer.objective.module(torch.as_tensor(X[b])), torch.as_tensor(y[b]))
            for b in batches
        ]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        for embeddings, codes in inputs:
            criterion(embeddings.requires_grad_(), codes).backward()
    events = sorted(profile.key_averages(), key=lambda e: -e.self_cpu_time_total)
    return [(e.key, e.self_cpu_time_total / 1e3 / len(inputs)) for e in events[:top]]


def profile_case(X, y, batch_size, mining, epochs, rounds) -> tuple[dict, list]:
    """The medians over ``rounds`` rounds, each timing every quantity once in turn."""
    measured = []
    for _ in range(rounds):
        emb, fit_time, run_time, totals = profiled_fit(X, y, batch_size, mining, epochs)
        per_epoch = run_time / epochs
        parts = {part: totals[part] / epochs for part in PARTS}
        measured.append({
            "fit_epoch_s": per_epoch,
            "fit_fixed_s": fit_time - run_time,
            **{f"{part}_s": seconds for part, seconds in parts.items()},
            "hooks_and_rest_s": per_epoch - sum(parts.values()),
            "floor_epoch_s": floor_epoch(X, batch_size, epochs, presliced=False),
            "floor_presliced_epoch_s": floor_epoch(X, batch_size, epochs, presliced=True),
        })  # fmt: skip
    row = {"batch_size": batch_size, "mining": mining, **pd.DataFrame(measured).median()}
    return row, loss_ops(emb, X, y, batch_size, top=6)


def commit() -> str:
    """The git commit of the sk_dml package that ran (``+changes`` if its tree was edited)."""
    package = Path(sk_dml.__file__).parent
    git = ["git", "-C", str(package)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "."], capture_output=True, text=True)
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def other_checkout(checkout: str, batch_size: int, mining: str, args) -> dict:
    """The profile of one case with the sk_dml of ``checkout`` (this script in a subprocess
    whose ``import sk_dml`` finds that checkout first)."""
    with tempfile.TemporaryDirectory() as folder:
        stem = Path(folder) / "case"
        subprocess.run(
            [sys.executable, __file__, "--batch-sizes", str(batch_size), "--minings", mining,
             "--epochs", str(args.epochs), "--rounds", str(args.rounds), "--rows",
             str(args.rows), "--output", str(stem)],
            cwd=checkout, env={**os.environ, "PYTHONPATH": checkout}, check=True,
            capture_output=True,
        )  # fmt: skip
        row = pd.read_csv(stem.with_suffix(".csv")).iloc[0].to_dict()
        row["commit"] = stem.with_suffix(".md").read_text().split(" at commit ")[1].split(";")[0]
    return row


def comparison(rows: list[dict], before: pd.DataFrame) -> list[str]:
    """Lines comparing this run with the other checkout's (``--compare-with``), in ratios
    to each one's own floor."""
    lines = [
        "",
        "## Against the earlier run",
        "",
        f"Each case profiled with the sk_dml at commit {before['commit'].iloc[0]} too, just "
        "before this one (`--compare-with`; its rows are in the CSV with `checkout` = "
        "`other`), as multiples of each one's own floor epoch.",
        "",
        "| case | loss forward + backward / floor, before | after | fit epoch / floor, before "
        "| after | floor / fit, before | after |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    earlier = before.set_index(["batch_size", "mining"])
    for r in rows:
        key = (r["batch_size"], r["mining"])
        if key not in earlier.index:
            continue
        cells = []
        for run in (earlier.loc[key], r):
            floor = run["floor_epoch_s"]
            cells.append(
                ((run["loss forward_s"] + run["loss backward_s"]) / floor,
                 run["fit_epoch_s"] / floor, floor / run["fit_epoch_s"])
            )  # fmt: skip
        (loss_b, epoch_b, ratio_b), (loss_a, epoch_a, ratio_a) = cells
        lines.append(
            f"| B={key[0]} {key[1]} | {loss_b:.2f} | {loss_a:.2f} | {epoch_b:.2f} | "
            f"{epoch_a:.2f} | {ratio_b:.2f} | **{ratio_a:.2f}** |"
        )
    return lines


def markdown(rows: list[dict], before: list[dict], ops: dict, args, wall: float) -> str:
    lines = [
        "# Where an epoch of `fit` goes",
        "",
        f"`python benchmarks/epoch_profile.py --batch-sizes {' '.join(map(str, args.batch_sizes))}"
        f" --minings {' '.join(args.minings)} --epochs {args.epochs} --rounds {args.rounds}` on "
        f"{date.today()}: "
        f"{platform.machine()}, 2 torch threads, torch {torch.__version__}, sk_dml "
        f"{sk_dml.__version__} at commit {commit()}; {wall / 60:.1f} min. {args.rows:,} rows "
        "x 16 features, 26 classes; `TripletEmbedder(early_stopping=False)`, the default "
        "512x512 -> 64 MLP. "
        "The protocol is in the docstring of benchmarks/epoch_profile.py.",
        "",
        f"Milliseconds per epoch, medians of {args.rounds} rounds; each part's share of the "
        "epoch inside `fit` in brackets. "
        "floor / fit is the floor's epoch time over the fit's: 1.00 would be the network's "
        "own speed.",
        "",
    ]
    header = [f"B={r['batch_size']} {r['mining']}" for r in rows]
    lines += ["| part | " + " | ".join(header) + " |", "|---|" + "--:|" * len(rows)]

    def line(label, key, share=True):
        cells = []
        for r in rows:
            ms = r[key] * 1e3
            cells.append(f"{ms:,.1f} ({r[key] / r['fit_epoch_s']:.0%})" if share else f"{ms:,.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for part in PARTS:
        line(part, f"{part}_s")
    line("sampler, hooks and the rest", "hooks_and_rest_s")
    line("**epoch inside fit**", "fit_epoch_s", share=False)
    line("fit's fixed cost (once per fit)", "fit_fixed_s", share=False)
    line("floor (gathered batches)", "floor_epoch_s", share=False)
    line("floor, pre-sliced", "floor_presliced_epoch_s", share=False)
    lines.append(
        "| **floor / fit** | "
        + " | ".join(f"**{r['floor_epoch_s'] / r['fit_epoch_s']:.2f}**" for r in rows)
        + " |"
    )
    lines += ["", "## The loss's largest operators (forward + backward, self CPU ms per step)", ""]
    for name in header:
        listed = ", ".join(f"`{op}` {ms:.3f}" for op, ms in ops[name])
        lines.append(f"- {name}: {listed}")
    if before:
        lines += comparison(rows, pd.DataFrame(before))
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--minings", nargs="+", default=["semihard", "batch_hard", "all"])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=14000)
    parser.add_argument("--output", default=str(RESULTS / "epoch_profile"))
    parser.add_argument("--compare-with", help="another checkout of sk_dml, profiled too")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    X, y = letter_like(n=args.rows)
    start = time.perf_counter()
    profiled_fit(X[:2000], y[:2000], 256, "semihard", 1)  # a warmed-up process
    rows, before, ops = [], [], {}
    for batch_size in args.batch_sizes:
        for mining in args.minings:
            if args.compare_with:
                before.append(other_checkout(args.compare_with, batch_size, mining, args))
            row, top = profile_case(X, y, batch_size, mining, args.epochs, args.rounds)
            rows.append(row)
            ops[f"B={batch_size} {mining}"] = top
            print(
                f"B={batch_size} {mining}: fit epoch {row['fit_epoch_s'] * 1e3:.1f} ms, floor "
                f"{row['floor_epoch_s'] * 1e3:.1f} ms",
                flush=True,
            )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows).assign(checkout="this")
    pd.concat([table, pd.DataFrame(before).assign(checkout="other")]).to_csv(
        output.with_suffix(".csv"), index=False
    )
    text = markdown(rows, before, ops, args, time.perf_counter() - start)
    output.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
