"""Training speed of a whole ``fit`` against a PML loop and the network's own floor.

**Whole fit.** On letter-sized data (14,000 rows x 16 features, 26 classes), in one process,
round after round (the medians are reported), each contender trains the same MLP (sk_dml's
default, 512x512 -> 64, L2-normalised) with AdamW at B rows per batch for ``--epochs`` epochs,
timed from construction to the end:

- **floor**: a plain torch loop, the network's forward + backward + optimizer step with a
  trivial loss (``emb.square().mean()``) and torch's default AdamW: no sampling, no mining,
  no metric loss. Two variants, batches pre-sliced from the table and batches gathered by index
  from a random permutation; the faster one is *the* floor. Nothing that trains this network
  this way can beat it.
- **sk_dml**: ``TripletEmbedder(mining=..., early_stopping=False).fit(X, y)``: validation,
  encoding, class-balanced sampling, mining, the loss, the epoch-end checks, everything, on
  every row. The default fit (``early_stopping="auto"``) holds out 10% of the rows and scores
  them after each epoch; its time is reported too.
- **PML**: a pytorch-metric-learning loop (MPerClassSampler, TripletMarginMiner or
  BatchHardMiner, TripletMarginLoss), written the way its examples train.

floor / sk_dml is the floor's time over the fit's (1.00: the network's own speed); sk_dml / PML
is PML's time over sk_dml's.

**Small fit.** ``fit`` with 1 epoch on digits (1,797 rows x 64) against one epoch of the floor
(gathered batches, from its construction): in a warmed-up process (median of 5), and the
first call of a fresh process, where both pay torch's one-off costs (the first optimizer
imports ``torch._dynamo``).

    python benchmarks/throughput.py [--device cpu|cuda] [--batch-size 256] [--epochs 5]

Writes benchmarks/results/throughput_<device>.md and .csv.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sk_dml import TripletEmbedder
from sk_dml.nets import make_mlp

RESULTS = Path(__file__).parent / "results"
MININGS = ("semihard", "batch_hard", "all")


def letter_like(n=14000, d=16, classes=26, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, d)) * 2
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def floor_seconds(X, batch_size, epochs, device, presliced: bool) -> float:
    """Seconds of the plain loop, from building the network and the optimizer to the end."""
    sync(device)
    start = time.perf_counter()
    defaults = TripletEmbedder()
    net = make_mlp(X.shape[1], defaults.n_components, defaults.hidden_layer_sizes).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    X_t = torch.as_tensor(X, device=device)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        if presliced:
            batches = X_t.split(batch_size)
        else:
            order = torch.randperm(len(X), generator=generator).to(device)
            batches = (X_t[index] for index in order.split(batch_size))
        for batch in batches:
            loss = net(batch).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    sync(device)
    return time.perf_counter() - start


def fit_seconds(X, y, batch_size, epochs, device, mining, early_stopping=False) -> float:
    emb = TripletEmbedder(
        mining=mining, batch_size=batch_size, max_epochs=epochs, early_stopping=early_stopping,
        n_iter_no_change=epochs + 1, random_state=0, device=device,
    )  # fmt: skip
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emb.fit(X, y)
    sync(device)
    assert emb.n_iter_ == epochs
    return time.perf_counter() - start


def pml_seconds(X, y, batch_size, epochs, device, mining) -> float:
    from pytorch_metric_learning import losses, miners, samplers

    sync(device)
    start = time.perf_counter()
    defaults = TripletEmbedder()
    net = make_mlp(X.shape[1], defaults.n_components, defaults.hidden_layer_sizes).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    loss_fn = losses.TripletMarginLoss(margin=0.2)
    if mining == "batch_hard":
        miner = miners.BatchHardMiner()
    else:
        miner = miners.TripletMarginMiner(margin=0.2, type_of_triplets=mining)
    # PML's sampler needs m * n_classes >= batch_size and m dividing batch_size.
    low = max(4, -(-batch_size // len(np.unique(y))))
    m = next(d for d in range(low, batch_size + 1) if batch_size % d == 0)
    sampler = samplers.MPerClassSampler(
        y, m=m, batch_size=batch_size, length_before_new_iter=len(y)
    )
    X_t, y_t = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)
    for _ in range(epochs):
        order = torch.tensor(list(iter(sampler)), device=device)
        for batch in order.split(batch_size):
            emb = net(X_t[batch])
            loss = loss_fn(emb, y_t[batch], miner(emb, y_t[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    sync(device)
    return time.perf_counter() - start


def whole_fit(args, device) -> pd.DataFrame:
    X, y = letter_like(n=args.rows)
    run = dict(batch_size=args.batch_size, epochs=args.epochs, device=device)
    # A warmed-up process: each contender once on part of the data before timing.
    floor_seconds(X[:2000], **run, presliced=True)
    fit_seconds(X[:2000], y[:2000], **run, mining="semihard")
    if not args.skip_pml:
        pml_seconds(X[:2000], y[:2000], **run, mining="semihard")
    rows = []
    for round_ in range(args.rounds):
        for mining in MININGS:
            rows.append({
                "round": round_,
                "mining": mining,
                "floor_presliced": floor_seconds(X, **run, presliced=True),
                "floor_gathered": floor_seconds(X, **run, presliced=False),
                "sk_dml": fit_seconds(X, y, **run, mining=mining),
                "sk_dml_default": fit_seconds(X, y, **run, mining=mining, early_stopping="auto"),
                "pml": np.nan if args.skip_pml else pml_seconds(X, y, **run, mining=mining),
            })  # fmt: skip
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


#: One measurement in a fresh process: the imports, then the timed call ({what}).
SMALL_FIT = """
import sys
sys.path.insert(0, {path!r})
import numpy as np, torch
from sklearn.datasets import load_digits
from throughput import floor_seconds, small_fit_seconds
torch.set_num_threads(2)
X, y = load_digits(return_X_y=True)
X, device = X.astype(np.float32), torch.device("cpu")
print({what})
"""


def small_fit_seconds(X, y) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        TripletEmbedder(max_epochs=1, random_state=0).fit(X, y)
    return time.perf_counter() - start


def small_fit() -> dict:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    cpu = torch.device("cpu")
    fresh = {}
    for name, what in {
        "first_fit": "small_fit_seconds(X, y)",
        "first_floor": "floor_seconds(X, 256, 1, device, presliced=False)",
    }.items():
        code = SMALL_FIT.format(path=str(Path(__file__).parent), what=what)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        fresh[name] = float(out.stdout.split()[-1])
    small_fit_seconds(X, y), floor_seconds(X, 256, 1, cpu, presliced=False)  # warm-up
    fits, floors = [], []
    for _ in range(5):
        fits.append(small_fit_seconds(X, y))
        floors.append(floor_seconds(X, 256, 1, cpu, presliced=False))
    return {"warm_fit": np.median(fits), "warm_floor": np.median(floors), **fresh}


def markdown(table: pd.DataFrame, small: dict | None, args, device) -> str:
    medians = table.groupby("mining", sort=False).median(numeric_only=True)
    lines = [
        f"# Training throughput ({device.type})",
        "",
        f"Generated by `python benchmarks/throughput.py --device {args.device} --batch-size "
        f"{args.batch_size} --epochs {args.epochs} --rounds {args.rounds} --rows {args.rows}` on "
        f"{date.today()} ({platform.machine()}, 2 torch threads on CPU, torch "
        f"{torch.__version__}). {args.rows:,} rows x 16 features, 26 classes; the default "
        f"512x512 -> 64 MLP; AdamW; B = {args.batch_size}; medians of {args.rounds} rounds, "
        "each contender in turn, in one warmed-up process. The protocol is in the docstring "
        "of benchmarks/throughput.py.",
        "",
        "## Whole fit",
        "",
        "Milliseconds per epoch, construction and fixed costs included. floor / sk_dml: the "
        "floor's time over `fit`'s (1.00 = the network's own speed).",
        "",
        "| mining | floor, pre-sliced | floor, gathered | sk_dml fit | floor / sk_dml | "
        "default fit (10% held out) | PML loop | sk_dml / PML |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    per_epoch = medians * 1e3 / args.epochs
    for mining, row in per_epoch.iterrows():
        floor = min(row.floor_presliced, row.floor_gathered)
        lines.append(
            f"| {mining} | {row.floor_presliced:,.0f} | {row.floor_gathered:,.0f} | "
            f"{row.sk_dml:,.0f} | **{floor / row.sk_dml:.2f}** | {row.sk_dml_default:,.0f} | "
            f"{row.pml:,.0f} | **{row.pml / row.sk_dml:.1f}x** |"
        )
    if small is not None:
        lines += [
            "",
            "## Small fit: digits, 1 epoch",
            "",
            "`TripletEmbedder(max_epochs=1).fit` (the defaults: 10% held out and scored, "
            "B = 256) against one epoch of the floor with gathered batches, from building "
            "the network and the optimizer. Milliseconds.",
            "",
            "| process | fit | floor epoch | fit / floor |",
            "|---|--:|--:|--:|",
            *(
                f"| {label} | {small[fit] * 1e3:,.0f} | {small[floor] * 1e3:,.0f} | "
                f"{small[fit] / small[floor]:.2f} |"
                for label, fit, floor in (
                    ("warmed up (median of 5)", "warm_fit", "warm_floor"),
                    ("first call of a fresh process", "first_fit", "first_floor"),
                )
            ),
        ]
    lines += [
        "",
        "Targets (CPU, B=256): semihard >= 0.75x the floor and >= 5x the PML loop; batch_hard "
        "and all >= 0.85x the floor; digits, 1 epoch: fit <= 2x the floor's epoch.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=14000)
    parser.add_argument("--skip-pml", action="store_true")
    parser.add_argument("--output", default=None, help="file stem (default: results/...)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(2)
    table = whole_fit(args, device)
    small = small_fit() if device.type == "cpu" else None
    stem = Path(args.output or RESULTS / f"throughput_{device.type}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(stem.with_suffix(".csv"), index=False)
    text = markdown(table, small, args, device)
    stem.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
