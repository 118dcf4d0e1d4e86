"""Training throughput of a whole ``fit`` against a PML loop and the network's own floor.

Three things train the same MLP (sk_dml's default, 512x512 -> 64) with the same optimizer,
batch size and number of epochs on letter-sized data, in the same run:

- sk_dml: ``TripletEmbedder(mining=...).fit`` (validation, sampling, loss, everything);
- PML: a pytorch-metric-learning loop (MPerClassSampler, TripletMarginMiner/BatchHardMiner,
  TripletMarginLoss), written the way its examples train;
- floor: the MLP's forward + backward + optimizer step with a trivial loss on pre-sliced
  batches: no sampling, no mining, no metric loss. Nothing that trains this network can beat it.

    python benchmarks/throughput.py [--device cpu|cuda] [--batch-size 256] [--epochs 5]

Writes benchmarks/results/throughput_<device>.md.
"""

from __future__ import annotations

import argparse
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import torch

from sk_dml import TripletEmbedder
from sk_dml.nets import make_mlp

RESULTS = Path(__file__).parent / "results"


def letter_like(n=14000, d=16, classes=26, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, d)) * 2
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def floor_rate(X, y, args, device) -> float:
    defaults = TripletEmbedder()
    net = make_mlp(X.shape[1], defaults.n_components, defaults.hidden_layer_sizes).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=defaults.learning_rate)
    X_t = torch.tensor(X, device=device)
    batches = X_t.split(args.batch_size)  # pre-sliced: no indexing cost at all
    sync(device)
    start = time.perf_counter()
    for _ in range(args.epochs):
        for batch in batches:
            loss = net(batch).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    sync(device)
    return args.epochs * len(X) / (time.perf_counter() - start)


def sk_dml_rate(X, y, args, device, mining) -> float:
    emb = TripletEmbedder(
        mining=mining, batch_size=args.batch_size, max_epochs=args.epochs,
        n_iter_no_change=args.epochs + 1, random_state=0, device=device,
    )  # fmt: skip
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emb.fit(X, y)
    sync(device)
    assert emb.n_iter_ == args.epochs
    return args.epochs * len(X) / (time.perf_counter() - start)


def pml_rate(X, y, args, device, mining) -> float:
    from pytorch_metric_learning import losses, miners, samplers

    defaults = TripletEmbedder()
    net = make_mlp(X.shape[1], defaults.n_components, defaults.hidden_layer_sizes).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=defaults.learning_rate)
    loss_fn = losses.TripletMarginLoss(margin=0.2)
    if mining == "batch_hard":
        miner = miners.BatchHardMiner()
    else:
        miner = miners.TripletMarginMiner(margin=0.2, type_of_triplets=mining)
    # PML's sampler needs m * n_classes >= batch_size and m dividing batch_size.
    low = max(4, -(-args.batch_size // len(np.unique(y))))
    m = next(d for d in range(low, args.batch_size + 1) if args.batch_size % d == 0)
    sampler = samplers.MPerClassSampler(
        y, m=m, batch_size=args.batch_size, length_before_new_iter=len(y)
    )
    X_t, y_t = torch.tensor(X, device=device), torch.tensor(y, device=device)
    sync(device)
    start = time.perf_counter()
    for _ in range(args.epochs):
        order = torch.tensor(list(iter(sampler)), device=device)
        for batch in order.split(args.batch_size):
            emb = net(X_t[batch])
            loss = loss_fn(emb, y_t[batch], miner(emb, y_t[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    sync(device)
    return args.epochs * len(X) / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=14000)
    parser.add_argument("--skip-pml", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(2)
    X, y = letter_like(n=args.rows)
    # A warmed-up process: one epoch of each contender on part of the data before timing.
    warm = argparse.Namespace(**{**vars(args), "epochs": 1})
    floor_rate(X, y, warm, device)
    sk_dml_rate(X[:2000], y[:2000], warm, device, "semihard")
    if not args.skip_pml:
        pml_rate(X[:2000], y[:2000], warm, device, "semihard")
    floor = floor_rate(X, y, args, device)
    lines = [
        f"# Training throughput ({device.type})",
        "",
        f"Generated by `python benchmarks/throughput.py --device {args.device} --batch-size "
        f"{args.batch_size} --epochs {args.epochs} --rows {args.rows}` on {date.today()} "
        f"(torch {torch.__version__}). {args.rows} rows x 16 features, 26 classes; the default "
        "512x512 -> 64 MLP; AdamW; samples per second over whole epochs, in a process warmed "
        "up by one epoch of each contender.",
        "",
        "| mining | floor (samples/s) | sk_dml fit | sk_dml / floor | PML loop | sk_dml / PML |",
        "|---|---|---|---|---|---|",
    ]
    for mining in ("semihard", "batch_hard"):
        ours = sk_dml_rate(X, y, args, device, mining)
        theirs = np.nan if args.skip_pml else pml_rate(X, y, args, device, mining)
        lines.append(
            f"| {mining} | {floor:,.0f} | {ours:,.0f} | {ours / floor:.2f}x | "
            f"{theirs:,.0f} | {ours / theirs:.1f}x |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        "Targets (CPU, B=256): sk_dml >= 0.6x the floor, and >= 5x the PML loop with its "
        "semihard miner.",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"throughput_{device.type}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
