"""The GPU checks in one call (about 5 minutes on an NVIDIA H200): tests, kernels, throughput.

1. The test suite with ``device="auto"`` resolving to CUDA (every estimator test then trains
   on the GPU), stopping at the first failure; its last lines go into the report.
2. Loss kernels: forward + backward of every sk_dml loss on CUDA at B = 1024 and 4096
   (B/4 classes of 4 rows), timed with CUDA events.
3. Whole-fit throughput at B = 1024 and 4096 (``throughput.py --device cuda``: the floor, the
   fit for each mining rule and the PML loop, on 1,000,000 letter-like rows).
4. The floor in bf16 autocast against float32, at B = 4096: what mixed precision would buy
   the network (``fit`` trains in float32).
5. Transform throughput on 10M rows.

    python benchmarks/gpu.py            # writes benchmarks/results/gpu.md (and gpu_*.md)
    python benchmarks/gpu.py --quick    # a smoke run: small sizes, no test suite

Not yet run on a GPU at the time of writing: the first run on a machine with one validates it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from contextlib import nullcontext
from datetime import date
from pathlib import Path

import numpy as np
import torch

from sk_dml import TripletEmbedder, losses
from sk_dml.nets import make_mlp

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent


def cuda_time(fn, repeats=20) -> float:
    """Median milliseconds of ``fn()`` on the GPU, after a warm-up."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def loss_kernels(batch_sizes) -> list[str]:
    lines = ["| loss | B | sk_dml ms |", "|---|--:|--:|"]
    cases = {
        "triplet all": lambda e, y: losses.triplet_loss(e, y, mining="all"),
        "triplet semihard": lambda e, y: losses.triplet_loss(e, y, mining="semihard"),
        "triplet batch_hard": lambda e, y: losses.triplet_loss(e, y, mining="batch_hard"),
        "contrastive": losses.contrastive_loss,
        "npair": losses.npair_loss,
        "lifted smooth": losses.lifted_struct_loss,
        "multi_similarity": losses.multi_similarity_loss,
    }
    for batch in batch_sizes:
        x = torch.randn(batch, 64, device="cuda", requires_grad=True)
        y = torch.arange(batch, device="cuda") % (batch // 4)
        for name, fn in cases.items():

            def step(fn=fn, x=x, y=y):
                fn(torch.nn.functional.normalize(x), y).backward()

            lines.append(f"| {name} | {batch} | {cuda_time(step):.2f} |")
    return lines


def autocast_floor(rows: int, batch: int) -> list[str]:
    """Samples per second of the floor's step in float32 and under bf16 autocast."""
    X = torch.randn(rows, 16, device="cuda")
    lines = ["| precision | samples/s |", "|---|--:|"]
    for name, dtype in (("float32", None), ("bf16 autocast", torch.bfloat16)):
        net = make_mlp(16, 64, (512, 512)).cuda()
        optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, fused=True)

        def epoch(net=net, optimizer=optimizer, dtype=dtype):
            for chunk in X.split(batch):
                precision = torch.autocast("cuda", dtype=dtype) if dtype else nullcontext()
                with precision:
                    loss = net(chunk).float().square().mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

        lines.append(f"| {name} | {rows / (cuda_time(epoch, repeats=3) / 1e3):,.0f} |")
    return lines


def transform_rate(rows: int) -> float:
    rng = np.random.default_rng(0)
    emb = TripletEmbedder(max_epochs=1, device="cuda").fit(
        rng.normal(size=(5000, 16)), np.arange(5000) % 26
    )
    X = rng.normal(size=(rows, 16)).astype(np.float32)
    start = time.perf_counter()
    emb.transform(X)
    return rows / (time.perf_counter() - start)


def throughput(batch: int, rows: int) -> list[str]:
    stem = RESULTS / f"gpu_throughput_b{batch}"
    # PML's TripletMarginMiner lists B^3 triplets: at B = 4096, far more than any memory.
    skip_pml = ["--skip-pml"] if batch > 1024 else []
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--device", "cuda",
         "--batch-size", str(batch), "--epochs", "2", "--rounds", "1", "--rows", str(rows),
         "--output", str(stem), *skip_pml],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if run.returncode != 0:
        return ["```", *run.stderr.strip().splitlines()[-10:], "```"]
    text = stem.with_suffix(".md").read_text().splitlines()
    return [line for line in text if line.startswith("|")]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no test suite")
    args = parser.parse_args(argv)
    assert torch.cuda.is_available(), "benchmarks/gpu.py needs a CUDA device"
    rows = 50_000 if args.quick else 1_000_000
    out = [f"# GPU checks ({torch.cuda.get_device_name()})", "",
           f"Generated by `python benchmarks/gpu.py{' --quick' if args.quick else ''}` on "
           f"{date.today()}, torch {torch.__version__}.", ""]  # fmt: skip
    returncode = 0
    if not args.quick:
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests"],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        returncode = tests.returncode
        out += ["## Test suite on CUDA", "", "```", *tests.stdout.strip().splitlines()[-3:], "```"]
        out.append("")
    out += ["## Loss kernels (forward + backward)", "", *loss_kernels((1024, 4096)), ""]
    for batch in (1024, 4096):
        out += [f"## Whole fit, B = {batch}, {rows:,} rows", "", *throughput(batch, rows), ""]
    out += ["## The floor in bf16 autocast, B = 4096", "", *autocast_floor(rows, 4096), ""]
    out += ["## Transform", "", f"{rows * 10:,} rows: {transform_rate(rows * 10):,.0f} rows/s", ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpu.md").write_text("\n".join(out) + "\n")
    print("\n".join(out))
    sys.exit(returncode)


if __name__ == "__main__":
    main()
