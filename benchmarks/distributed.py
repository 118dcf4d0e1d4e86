"""Data-parallel training (torchrun, DDP) with 1 and 2 processes, side by side in one run.

The same script, the same estimator (``TripletEmbedder(mining="batch_hard")``, default network)
and the same epochs on letter (70/30 stratified split), launched by ``torchrun`` with
``--nproc_per_node`` 1 and 2 (gloo on CPUs, NCCL on GPUs), and for reference a plain process
with all the machine's threads. Reports the fit's wall time, samples per second and the 5-NN
accuracy on the held-out 30%.

On a 2-core machine this is weak evidence: two processes share the two cores that one
process would use with two threads, so data parallelism cannot speed anything up there; what it
shows is the cost of the gradient all-reduce and that accuracy holds.

    python benchmarks/distributed.py [--epochs 20] [--quick]

Writes benchmarks/results/distributed_<device>.md and .csv.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import pandas as pd
import torch

RESULTS = Path(__file__).parent / "results"


def worker(args) -> None:
    """One rank: fit, time it, and (rank 0) write the measurements as JSON."""
    import torch.distributed as dist
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    from sk_dml import TripletEmbedder
    from sk_dml.datasets import load_letter

    X, y = load_letter()
    X = StandardScaler().fit_transform(X.to_numpy(dtype="float32"))
    if args.quick:
        X, y = X[:4000], y[:4000]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y.to_numpy(), test_size=0.3, stratify=y, random_state=0
    )
    emb = TripletEmbedder(
        mining="batch_hard", max_epochs=args.epochs, n_iter_no_change=args.epochs + 1,
        random_state=0, device=args.device,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        start = time.perf_counter()
        emb.fit(X_train, y_train)
        seconds = time.perf_counter() - start
    knn = KNeighborsClassifier(5).fit(emb.transform(X_train), y_train)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank == 0:
        Path(args.worker).write_text(
            json.dumps(
                {
                    "seconds": seconds,
                    "samples_per_s": args.epochs * len(X_train) / seconds,
                    "accuracy": knn.score(emb.transform(X_test), y_test),
                    "epochs": emb.n_iter_,
                    "threads_per_process": torch.get_num_threads(),
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="4,000 rows, 2 epochs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # the JSON path, set by main
    args = parser.parse_args()
    if args.quick:
        args.epochs = 2
    if args.worker:
        worker(args)
        return

    n_devices = torch.cuda.device_count() if args.device == "cuda" else os.cpu_count()
    # (name, processes, threads per process, epochs): each multi-process count runs twice, with
    # the same epochs (1/W of the steps) and with W times the epochs (the same steps per rank).
    runs = [("1 process", None, n_devices, args.epochs), ("torchrun x1", 1, n_devices, args.epochs)]
    for n in (2, 4, 8):
        if n <= n_devices:
            threads = max(n_devices // n, 1)
            runs.append((f"torchrun x{n}", n, threads, args.epochs))
            runs.append((f"torchrun x{n}, {n}x epochs", n, threads, n * args.epochs))
    rows = []
    for name, nproc, threads, epochs in runs:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            own = [__file__, "--worker", str(out), "--epochs", str(epochs)]
            own += ["--device", args.device] + (["--quick"] if args.quick else [])
            if nproc is None:
                command = [sys.executable, *own]
            else:
                command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
                command += ["--nproc_per_node", str(nproc), *own]
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            subprocess.run(command, env=env, check=True)
            result = json.loads(out.read_text())
        rows.append({"run": name, "processes": nproc or 1, **result})
        print(rows[-1], flush=True)

    table = pd.DataFrame(rows)
    base = table.loc[table["run"] == "1 process", "samples_per_s"].iloc[0]
    table["speed vs 1 process"] = table["samples_per_s"] / base
    table["samples_per_s"] = table["samples_per_s"].round().astype(int)
    suffix = "_quick" if args.quick else ""
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / f"distributed_{args.device}{suffix}.csv", index=False)
    machine = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"{os.cpu_count()} CPU cores"
    )
    text = f"""# Data-parallel training (torchrun), {args.device}

{date.today()}, {machine}, torch {torch.__version__}. Letter (14,000 training rows, 16
features, 26 classes), `TripletEmbedder(mining="batch_hard")` with the default network and
batch size 256 per process, {args.epochs} epochs unless the row says otherwise (with W times the
epochs, each rank takes as many optimizer steps as one process does), 5-NN accuracy on the
held-out 30%. Each row
is a separate launch of the same script in this one benchmark run; "1 process" is a plain
`python` run without torch.distributed.

{table.to_markdown(index=False, floatfmt=".4g")}

Reproduce: `python benchmarks/distributed.py --epochs {args.epochs}` (a GPU machine runs the
same script with NCCL, one process per GPU).

With W processes each rank takes 1/W of an epoch's batches (batch size per rank, global batch
W x 256), so a run with more processes makes fewer, larger steps: accuracy after the same
epochs is the check that data parallelism trains as well. On a CPU machine the processes share
the cores that one process would use with all its threads, so no speed-up is possible there:
the CPU rows measure the overhead of the gradient all-reduce, not a gain.
"""
    (RESULTS / f"distributed_{args.device}{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
