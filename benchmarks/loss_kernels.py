"""Forward + backward time and peak memory of sk_dml's losses against pytorch-metric-learning.

Usage::

    python benchmarks/loss_kernels.py            # full run: B in 64..1024, ~1 s of reps per point
    python benchmarks/loss_kernels.py --quick    # CI smoke test: B in {64, 256}, few reps

The full run writes ``benchmarks/results/loss_kernels.{csv,md,png}``; ``--quick`` writes
``loss_kernels_quick.*`` next to them so that it never overwrites the full results.

Every (library, loss, mode, batch) point runs in a fresh subprocess (this script re-invoked with
``--worker``) that imports only torch and the library under test, builds the same model and batch
(same seed), warms up once, then times the median of several forward + backward passes.
Memory is the process's peak RSS (``ru_maxrss``) and its increment over the RSS measured after
imports, model and batch creation. The two libraries of a pair run one after the other, so their
ratio is measured side by side on the same (noisy, shared) machine.

PML points whose estimated memory is above ``--pml-limit-gb`` (6 GB by default) are not run and
are reported as ``skipped (would exceed 8 GB)``; the estimate is the size of the tensors PML
materialises (see :func:`pml_estimate_bytes`). As a second guard the parent kills a worker whose
RSS goes over ``--kill-gb`` or that runs longer than ``--timeout``.

On a shared machine (2 threads on 2 cores), another busy process distorts the times, so each
worker waits for the machine to be quiet before timing, measures how many cores other processes
used meanwhile, times again if that was above ``--load-threshold``, and the markdown marks the
points that still ran on a busy machine. ``--repeats N`` measures each point N times, alternating
the libraries, and ``--only triplet:all lifted`` restricts the cases: use both for a closer look
at one target. Beside the step time (MLP forward, loss, backward), each worker also times the
loss alone on a leaf copy of the embeddings, as a diagnostic.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"

FULL_BATCHES = (64, 128, 256, 512, 1024)
QUICK_BATCHES = (64, 256)
LIBRARIES = ("sk_dml", "pml")
MARGIN = 0.2  # triplet margin, both libraries
NUM_THREADS = 2
IN_DIM, HIDDEN, EMB_DIM = 16, 128, 32
RESULT_TAG = "RESULT "
# OpenMP wait settings of the workers (--omp-wait-policy). Measured on the 2-vCPU VM this was
# written on, triplet "all" at B=256 (sk_dml / PML ms): quiet machine, passive 3.5 / 15,
# GOMP_SPINCOUNT=1000 1.6 / -, 10000 1.5 / 12.9; one busy neighbour, passive 2.5 / 23.5,
# 1000 5.0 / 25.8, 10000 21 / -, libgomp's default 300 / 400.
OMP_ENV = {
    "spin": {"GOMP_SPINCOUNT": "1000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE"},
    "inherit": {},
}
SKIPPED = "skipped (would exceed 8 GB)"

# (loss, mode): what sk_dml calls, and its PML counterpart.
CASES: tuple[tuple[str, str, str, str], ...] = (
    (
        "triplet",
        "all",
        'triplet_loss(mining="all", margin=0.2)',
        "TripletMarginLoss(margin=0.2), no miner (all triplets)",
    ),
    (
        "triplet",
        "semihard",
        'triplet_loss(mining="semihard", margin=0.2)',
        "TripletMarginLoss(margin=0.2) + "
        'TripletMarginMiner(margin=0.2, type_of_triplets="semihard")',
    ),
    (
        "triplet",
        "hard",
        'triplet_loss(mining="hard", margin=0.2)',
        'TripletMarginLoss(margin=0.2) + TripletMarginMiner(margin=0.2, type_of_triplets="hard")',
    ),
    (
        "triplet",
        "batch_hard",
        'triplet_loss(mining="batch_hard", margin=0.2)',
        "TripletMarginLoss(margin=0.2) + BatchHardMiner()",
    ),
    (
        "triplet",
        "all@10c",
        'triplet_loss(mining="all", margin=0.2) on 10 classes of B/10',
        "TripletMarginLoss(margin=0.2), no miner (all triplets), same batch",
    ),
    (
        "contrastive",
        "-",
        "contrastive_loss(margin=1.0)",
        "ContrastiveLoss(pos_margin=0, neg_margin=1)",
    ),
    ("npair", "-", "npair_loss()", "NPairsLoss()"),
    (
        "lifted",
        "smooth",
        'lifted_struct_loss(variant="smooth", margin=1.0)',
        "LiftedStructureLoss(neg_margin=1, pos_margin=0)",
    ),
    (
        "lifted",
        "hard",
        'lifted_struct_loss(variant="hard", margin=1.0)',
        "LiftedStructureLoss(neg_margin=1, pos_margin=0)",
    ),
    (
        "proxy_anchor",
        "-",
        "proxy_anchor_loss(proxies, margin=0.1, alpha=32)",
        "ProxyAnchorLoss(n_classes, 32, margin=0.1, alpha=32), the same proxies",
    ),
    (
        "multi_similarity",
        "-",
        "multi_similarity_loss(alpha=2, beta=50, base=0.5, epsilon=0.1)",
        "MultiSimilarityLoss(alpha=2, beta=50, base=0.5) + MultiSimilarityMiner(epsilon=0.1)",
    ),
)
# A mode ending in this suffix draws 10 classes per batch instead of B/4 classes of 4.
TEN_CLASSES = "@10c"

# Calibrated on this benchmark's batches (4 members per class) by running PML alone at growing
# sizes under a kill guard: the measured RSS increment was ~1.0 byte per B^3 cell + ~60 bytes per
# triplet (TripletMarginLoss, B = 64..1024) and 22.1 bytes per |P| x |N| cell
# (LiftedStructureLoss, B = 192..384: 1.05 GB at B=256, 3.5 GB at B=384). Rounded up, so the
# estimate bounds the measured increment from above.
PML_BYTES_PER_TRIPLET_CELL = 1.25  # B^3 uint8 product + nonzero over it, all-triplet paths
PML_BYTES_PER_TRIPLET = 80.0  # int64 (a, p, n) indices + per-triplet floats and their grads
PML_BYTES_PER_PN_CELL = 24.0  # LiftedStructureLoss: bool/float |P| x |N| tensors + autograd
PML_BASE_BYTES = 96 * 2**20

TARGETS_DOC = (
    "triplet all B=256 >= 20x faster than PML",
    "triplet all B=256 with 10 classes, the loss alone >= 15x faster than PML",
    "lifted smooth B=256 >= 100x faster than PML",
    "sk_dml B=1024 every loss under 1 GB peak RSS",
    "semihard and batch_hard >= 10x faster than PML's miner path at B=256",
)


# --------------------------------------------------------------------------------------------
# Batch and memory estimate (shared by parent and worker)
# --------------------------------------------------------------------------------------------


def n_classes_of(batch: int, mode: str) -> int:
    """Classes in a batch: B/4 (4 rows each), or 10 for a mode ending in ``TEN_CLASSES``."""
    return 10 if mode.endswith(TEN_CLASSES) else max(1, batch // 4)


def batch_labels(batch: int, mode: str):
    """Labels 0..C-1 (C = ``n_classes_of``), equally often, shuffled (the caller seeds torch)."""
    import torch

    labels = torch.arange(batch) % n_classes_of(batch, mode)
    return labels[torch.randperm(batch)]


def pair_counts(batch: int, mode: str) -> tuple[int, int, int]:
    """(ordered positive pairs, ordered negative pairs, valid triplets) of :func:`batch_labels`."""
    n_classes = n_classes_of(batch, mode)
    sizes = [batch // n_classes + (1 if c < batch % n_classes else 0) for c in range(n_classes)]
    positives = sum(s * (s - 1) for s in sizes)
    negatives = batch * batch - sum(s * s for s in sizes)
    triplets = sum(s * (s - 1) * (batch - s) for s in sizes)
    return positives, negatives, triplets


def pml_estimate_bytes(loss: str, mode: str, batch: int) -> float:
    """Upper estimate of the memory PML's counterpart allocates for one forward + backward.

    - all-triplet paths (no miner, TripletMarginMiner): ``get_all_triplets_indices`` builds the
      ``B^3`` uint8 tensor ``matches[:, :, None] * diffs[:, None, :]`` and ``torch.where`` over
      it, then int64 indices and float distances for every valid triplet;
    - LiftedStructureLoss: ``|P| x |N|`` masks and float matrices (``n_per_p``, ``neg_pairs``,
      ``keep_mask``, the logsumexp input) plus their autograd buffers;
    - the others (contrastive, N-pairs, BatchHardMiner) are O(B^2).
    """
    positives, negatives, triplets = pair_counts(batch, mode)
    if loss == "triplet" and mode.removesuffix(TEN_CLASSES) in ("all", "semihard", "hard"):
        return (
            PML_BASE_BYTES
            + PML_BYTES_PER_TRIPLET_CELL * batch**3
            + PML_BYTES_PER_TRIPLET * triplets
        )
    if loss == "lifted":
        return PML_BASE_BYTES + PML_BYTES_PER_PN_CELL * positives * negatives
    return PML_BASE_BYTES + 64.0 * batch * batch


# --------------------------------------------------------------------------------------------
# Worker: one point in a fresh process
# --------------------------------------------------------------------------------------------


def _current_rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, steal included)."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10])  # already counted in user/nice
    return (sum(fields) - idle - guest) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_for_idle(max_wait_s: float, threshold: float, window_s: float = 0.5) -> float:
    """Wait (at most ``max_wait_s``) until other processes use under ``threshold`` cores."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy0, own0, wall0 = _machine_busy_s(), _own_cpu_s(), time.monotonic()
        time.sleep(window_s)
        load = max(0.0, (_machine_busy_s() - busy0) - (_own_cpu_s() - own0)) / (
            time.monotonic() - wall0
        )
        if load < threshold or time.monotonic() > deadline:
            return load


def _proxies(n_classes: int):
    """The proxies both libraries start from (their own seed: the batch is the same anyway)."""
    import torch

    return torch.randn(n_classes, EMB_DIM, generator=torch.Generator().manual_seed(1))


def _build_sk_dml(loss: str, mode: str, n_classes: int):
    sys.path.insert(0, str(REPO))
    import torch

    from sk_dml import losses

    if loss == "triplet":
        mining = mode.removesuffix(TEN_CLASSES)
        return lambda emb, y: losses.triplet_loss(emb, y, margin=MARGIN, mining=mining)
    if loss == "proxy_anchor":
        proxies = torch.nn.Parameter(_proxies(n_classes))
        return lambda emb, y: losses.proxy_anchor_loss(emb, y, proxies, margin=0.1, alpha=32.0)
    if loss == "multi_similarity":
        return lambda emb, y: losses.multi_similarity_loss(
            emb, y, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1
        )
    if loss == "contrastive":
        return lambda emb, y: losses.contrastive_loss(emb, y, margin=1.0)
    if loss == "npair":
        return lambda emb, y: losses.npair_loss(emb, y)
    if loss == "lifted":
        return lambda emb, y: losses.lifted_struct_loss(emb, y, margin=1.0, variant=mode)
    raise ValueError(loss)


def _build_pml(loss: str, mode: str, n_classes: int):
    from pytorch_metric_learning import losses, miners

    miner = None
    if loss == "proxy_anchor":
        fn = losses.ProxyAnchorLoss(n_classes, EMB_DIM, margin=0.1, alpha=32)
        fn.proxies.data.copy_(_proxies(n_classes))
    elif loss == "multi_similarity":
        fn = losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5)
        miner = miners.MultiSimilarityMiner(epsilon=0.1)
    elif loss == "triplet":
        fn = losses.TripletMarginLoss(margin=MARGIN)
        if mode in ("semihard", "hard"):
            miner = miners.TripletMarginMiner(margin=MARGIN, type_of_triplets=mode)
        elif mode == "batch_hard":
            miner = miners.BatchHardMiner()
    elif loss == "contrastive":
        fn = losses.ContrastiveLoss(pos_margin=0, neg_margin=1)
    elif loss == "npair":
        fn = losses.NPairsLoss()
    elif loss == "lifted":
        fn = losses.LiftedStructureLoss(neg_margin=1, pos_margin=0)
    else:
        raise ValueError(loss)
    if miner is None:
        return lambda emb, y: fn(emb, y)
    return lambda emb, y: fn(emb, y, miner(emb, y))


def worker(spec: dict) -> dict:
    """Measure one point in this (fresh) process; ``spec`` comes from :func:`run_point`."""
    import resource

    import torch
    import torch.nn.functional as F

    library, loss, mode, batch = spec["library"], spec["loss"], spec["mode"], spec["batch"]
    torch.set_num_threads(NUM_THREADS)
    fn = (_build_sk_dml if library == "sk_dml" else _build_pml)(
        loss, mode, n_classes_of(batch, mode)
    )

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(IN_DIM, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, EMB_DIM)
    )
    x = torch.randn(batch, IN_DIM)
    labels = batch_labels(batch, mode)

    def step() -> float:
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        # Unit-norm embeddings: PML's default distances normalise anyway (a no-op then), so both
        # libraries see the same distances and mine the same triplets.
        emb = F.normalize(model(x), dim=1)
        value = fn(emb, labels)
        value.backward()
        elapsed = time.perf_counter() - start
        step.value = float(value.detach())
        return elapsed

    baseline_kb = _current_rss_kb()
    baseline_max_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()  # warm-up
    # With 2 threads on a 2-core machine, another busy process makes every parallel region wait
    # for a descheduled thread: times then grow by orders of magnitude. So wait for the machine
    # to be quiet before timing, measure how busy it was meanwhile, and time again (keeping the
    # quietest run) if other processes used more than `load_threshold` cores.
    best, waited, tries = None, 0.0, 0
    while tries < spec["attempts"]:
        tries += 1
        allowance = min(spec["idle_wait"], spec["wait_left"] - waited)
        if allowance > 0:
            t0 = time.monotonic()
            wait_for_idle(allowance, spec["load_threshold"])
            waited += time.monotonic() - t0
        times: list[float] = []
        busy0, own0, wall0 = _machine_busy_s(), _own_cpu_s(), time.monotonic()
        while len(times) < spec["max_reps"] and (
            len(times) < spec["min_reps"] or sum(times) < spec["budget"]
        ):
            times.append(step())
        busy1, own1, wall1 = _machine_busy_s(), _own_cpu_s(), time.monotonic()
        # CPU cores used by other processes while the repetitions ran (0 on an idle machine).
        load = max(0.0, (busy1 - busy0) - (own1 - own0)) / max(wall1 - wall0, 1e-9)
        if best is None or load < best[1]:
            best = (times, load)
        # A slow point is not timed again: its repetitions already span the competing load.
        if load < spec["load_threshold"] or wall1 - wall0 > 3 * spec["budget"] + 1:
            break
    times, load = best
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    # Diagnostic: the loss alone, forward + backward to a leaf copy of the embeddings (no MLP).
    emb0 = F.normalize(model(x), dim=1).detach()
    kernel_times: list[float] = []
    busy0, own0, wall0 = _machine_busy_s(), _own_cpu_s(), time.monotonic()
    while len(kernel_times) < spec["max_reps"] and (
        len(kernel_times) < spec["min_reps"] or sum(kernel_times) < spec["budget"] / 2
    ):
        leaf = emb0.clone().requires_grad_()
        start = time.perf_counter()
        fn(leaf, labels).backward()
        kernel_times.append(time.perf_counter() - start)
    busy1, own1, wall1 = _machine_busy_s(), _own_cpu_s(), time.monotonic()
    kernel_load = max(0.0, (busy1 - busy0) - (own1 - own0)) / max(wall1 - wall0, 1e-9)
    return {
        "loss_only_ms": 1e3 * statistics.median(kernel_times),
        "loss_only_load": kernel_load,
        "time_ms": 1e3 * statistics.median(times),
        "reps": len(times),
        "attempts": tries,
        "waited_s": waited,
        "external_load": load,
        "peak_rss_mb": peak_kb / 1024,
        "baseline_rss_mb": baseline_kb / 1024,
        "baseline_maxrss_mb": baseline_max_kb / 1024,
        "delta_rss_mb": (peak_kb - baseline_kb) / 1024,
        "loss_value": step.value,
    }


# --------------------------------------------------------------------------------------------
# Parent: run the points, guard memory and time
# --------------------------------------------------------------------------------------------


def _rss_of(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def run_point(library, loss, mode, batch, args, wait_left: float = 0.0) -> dict:
    """Run one point in a fresh subprocess, killing it above ``--kill-gb`` RSS or on timeout."""
    spec = {
        "library": library,
        "loss": loss,
        "mode": mode,
        "batch": batch,
        "budget": args.budget,
        "min_reps": args.min_reps,
        "max_reps": args.max_reps,
        "attempts": args.attempts,
        "idle_wait": args.idle_wait,
        "wait_left": wait_left,
        "load_threshold": args.load_threshold,
    }
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    env = dict(os.environ)
    env.update(OMP_ENV[args.omp_wait_policy])
    if args.omp_wait_policy != "inherit":
        for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
            if name not in OMP_ENV[args.omp_wait_policy]:
                env.pop(name, None)
    kill_bytes = args.kill_gb * 2**30
    timeout = args.timeout + args.attempts * min(args.idle_wait, wait_left)
    status = None
    max_seen = 0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=REPO, env=env)
        start = time.monotonic()
        while proc.poll() is None:
            rss = _rss_of(proc.pid)
            max_seen = max(max_seen, rss)
            if rss > kill_bytes:
                status = f"killed (RSS > {args.kill_gb:g} GB)"
            elif time.monotonic() - start > timeout:
                status = f"timeout (> {timeout:g} s)"
            if status:
                proc.kill()
                proc.wait()
                break
            time.sleep(0.05)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if status is None and proc.returncode != 0:
        last = (stderr.strip().splitlines() or ["?"])[-1]
        status = f"error: {last[:120]}"
    result = {"status": status or "ok", "max_seen_mb": max_seen / 2**20}
    if status is None:
        lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_TAG)]
        result.update(json.loads(lines[-1][len(RESULT_TAG) :]))
    return result


def _combine(runs: list[dict]) -> dict:
    """One row from the repeated runs of a point: median times, largest memory."""
    if any(r["status"] != "ok" for r in runs):
        return next(r for r in runs if r["status"] != "ok")
    out = dict(runs[0])
    for key in ("time_ms", "loss_only_ms", "external_load", "loss_only_load"):
        out[key] = statistics.median(r[key] for r in runs)
    for key in ("peak_rss_mb", "delta_rss_mb"):
        out[key] = max(r[key] for r in runs)
    out["waited_s"] = sum(r["waited_s"] for r in runs)
    out["runs"] = runs
    return out


def _selected(loss: str, mode: str, only) -> bool:
    return not only or any(sel in (loss, f"{loss}:{mode}") for sel in only)


def run_all(args) -> list[dict]:
    rows = []
    limit = args.pml_limit_gb * 2**30
    cases = [c for c in CASES if _selected(c[0], c[1], args.only)]
    total = len(cases) * len(args.batches) * len(LIBRARIES) * args.repeats
    wait_left = args.wait_budget
    done = 0
    for loss, mode, _, _ in cases:
        for batch in args.batches:
            runs = {library: [] for library in LIBRARIES}
            # Side by side: the two libraries of a point run back to back (alternating when
            # repeated), so both see the same state of the shared machine.
            for _ in range(args.repeats):
                for library in LIBRARIES:
                    done += 1
                    estimate = pml_estimate_bytes(loss, mode, batch) if library == "pml" else None
                    if estimate is not None and estimate > limit:
                        res = {"status": SKIPPED}
                    else:
                        res = run_point(library, loss, mode, batch, args, wait_left)
                        wait_left -= res.get("waited_s", 0.0)
                    runs[library].append(res)
                    shown = (
                        f"{res['time_ms']:9.2f} ms (loss alone {res['loss_only_ms']:8.2f})  "
                        f"peak {res['peak_rss_mb']:6.0f} MB  "
                        f"delta {res['delta_rss_mb']:7.1f} MB  ({res['reps']} reps, other load "
                        f"{res['external_load']:.2f}, try {res['attempts']}, "
                        f"waited {res['waited_s']:.0f} s)"
                        if res["status"] == "ok"
                        else res["status"]
                    )
                    print(
                        f"[{done:3d}/{total}] {library:6s} {loss:11s} {mode:10s} B={batch:5d}  "
                        f"{shown}",
                        flush=True,
                    )
            for library in LIBRARIES:
                row = {"loss": loss, "mode": mode, "batch": batch, "library": library}
                row.update(_combine(runs[library]))
                if library == "pml":
                    row["estimate_mb"] = pml_estimate_bytes(loss, mode, batch) / 2**20
                rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "loss",
    "mode",
    "batch",
    "library",
    "time_ms",
    "peak_rss_mb",
    "delta_rss_mb",
    "status",
)


def write_csv(rows, path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            ok = r["status"] == "ok"
            writer.writerow(
                [
                    r["loss"],
                    r["mode"],
                    r["batch"],
                    r["library"],
                    f"{r['time_ms']:.4f}" if ok else "",
                    f"{r['peak_rss_mb']:.1f}" if ok else "",
                    f"{r['delta_rss_mb']:.1f}" if ok else "",
                    r["status"],
                ]
            )


def _index(rows):
    return {(r["loss"], r["mode"], r["batch"], r["library"]): r for r in rows}


def _get(idx, loss, mode, batch, library, key):
    r = idx.get((loss, mode, batch, library))
    return r.get(key) if r and r["status"] == "ok" else None


def _speedup(idx, loss, mode, batch, key="time_ms"):
    """PML time / sk_dml time; with repeated runs, the median of the paired (run i) ratios."""
    sk = idx.get((loss, mode, batch, "sk_dml"))
    pml = idx.get((loss, mode, batch, "pml"))
    if not (sk and pml and sk["status"] == "ok" and pml["status"] == "ok"):
        return None
    if "runs" in sk and len(sk["runs"]) > 1:
        pairs = zip(pml["runs"], sk["runs"], strict=True)
        return statistics.median(p[key] / q[key] for p, q in pairs)
    return pml[key] / sk[key]


def evaluate_targets(rows) -> list[tuple[str, str, bool | None, str]]:
    """(target, measured, met, diagnostic) for the four targets; met is None when not measured.

    ``measured`` and ``met`` use the benchmark's time (MLP forward + loss + backward);
    ``diagnostic`` gives the same ratio for the loss alone, which is not what the targets use.
    """
    idx = _index(rows)

    def speedup(loss, mode, batch, key="time_ms"):
        return _speedup(idx, loss, mode, batch, key)

    def show(value, loss=None, mode=None, key="time_ms"):
        if value is None:
            return "n/a"
        sk, pml = idx.get((loss, mode, 256, "sk_dml")), idx.get((loss, mode, 256, "pml"))
        if loss is None or "runs" not in sk or len(sk["runs"]) < 2:
            return f"{value:.1f}x"
        ratios = [p[key] / q[key] for p, q in zip(pml["runs"], sk["runs"], strict=True)]
        return f"{value:.1f}x [{min(ratios):.1f}-{max(ratios):.1f}]"

    out = []
    for (loss, mode), need, doc in (
        (("triplet", "all"), 20.0, TARGETS_DOC[0]),
        (("lifted", "smooth"), 100.0, TARGETS_DOC[2]),
    ):
        s = speedup(loss, mode, 256)
        out.append(
            (
                doc,
                "not measured" if s is None else show(s, loss, mode),
                None if s is None else s >= need,
                show(speedup(loss, mode, 256, "loss_only_ms"), loss, mode, "loss_only_ms"),
            )
        )

    # The loss alone decides this one: the MLP's share would hide the kernel.
    mode = "all" + TEN_CLASSES
    s = speedup("triplet", mode, 256, "loss_only_ms")
    out.insert(
        1,
        (
            TARGETS_DOC[1],
            "not measured" if s is None else show(s, "triplet", mode, "loss_only_ms"),
            None if s is None else s >= 15.0,
            "step: " + show(speedup("triplet", mode, 256), "triplet", mode),
        ),
    )

    peaks = {
        (loss, mode): _get(idx, loss, mode, 1024, "sk_dml", "peak_rss_mb")
        for loss, mode, _, _ in CASES
    }
    if any(v is None for v in peaks.values()):
        out.append((TARGETS_DOC[3], "not measured (B=1024 not in this run)", None, ""))
    else:
        worst = max(peaks, key=peaks.get)
        deltas = [
            _get(idx, loss, mode, 1024, "sk_dml", "delta_rss_mb") for loss, mode, _, _ in CASES
        ]
        out.append(
            (
                TARGETS_DOC[3],
                f"max {peaks[worst]:.0f} MB ({worst[0]}"
                + ("" if worst[1] == "-" else f" {worst[1]}")
                + "); limit 1024 MB",
                max(peaks.values()) < 1024,
                f"largest increment over the baseline {max(deltas):.0f} MB",
            )
        )

    parts, kernel_parts, met = [], [], True
    for mode in ("semihard", "batch_hard"):
        s = speedup("triplet", mode, 256)
        kernel = speedup("triplet", mode, 256, "loss_only_ms")
        parts.append(f"{mode} {show(s, 'triplet', mode)}")
        kernel_parts.append(f"{mode} {show(kernel, 'triplet', mode, 'loss_only_ms')}")
        met = None if (s is None or met is None) else (met and s >= 10.0)
    out.append((TARGETS_DOC[4], ", ".join(parts), met, ", ".join(kernel_parts)))
    return out


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _mark(row, args) -> str:
    """Dagger for a time measured while other processes kept the CPUs busy."""
    return " †" if row.get("external_load", 0.0) >= args.load_threshold else ""


def _cmd_line(argv) -> str:
    return "python " + " ".join(
        shlex.quote(a)
        for a in [
            str(Path(sys.argv[0]).resolve().relative_to(REPO))
            if Path(sys.argv[0]).resolve().is_relative_to(REPO)
            else sys.argv[0],
            *argv,
        ]
    )


# The files the benchmarked code lives in.
KERNEL_FILES = ("sk_dml/losses.py", "sk_dml/distances.py", "sk_dml/miners.py")


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *KERNEL_FILES],
            cwd=REPO,
            text=True,
            capture_output=True,
            check=True,
        )
        return head + (
            " (with uncommitted changes to "
            + ", ".join(line[3:] for line in dirty.stdout.splitlines())
            + ")"
            if dirty.stdout.strip()
            else ""
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _kernel_fingerprint() -> str:
    import hashlib

    digest = hashlib.sha1()
    for name in KERNEL_FILES:
        path = REPO / name
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()[:12]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# The report's prose; write_markdown fills in the numbers and the tables.
REPORT = """\
# Loss kernels: sk_dml vs pytorch-metric-learning (CPU)

- Generated by: `{command}` (run from the repository root)
- Date: {date}; wall time {wall_min:.1f} min
- torch {torch}, pytorch-metric-learning {pml}, Python {python}, sk_dml commit {commit}{changed}
- CPU: {cpu}, {cores} cores visible, `torch.set_num_threads({threads})` in every worker, \
OpenMP waiting `--omp-wait-policy {omp}` ({omp_env}). On this 2-vCPU VM, libgomp's default \
spinning turns a busy neighbour into ~100x slowdowns of 2-thread kernels, while fully passive \
waiting doubles the time of small kernels on a quiet machine; a short spin is close to the best \
of both.
- Model: Linear({in_dim},{hidden})-ReLU-Linear({hidden},{emb_dim}), output L2-normalised; \
input `randn(B, 16)`; labels `arange(B) % (B//4)` shuffled (B/4 classes of 4; a mode ending \
in `{ten}`: `arange(B) % 10`, 10 classes of B/10); seed 0, so both libraries get the same \
batch (and the proxy losses the same proxies).
- Timing: forward (model + loss) + backward, median of the repetitions after one warm-up, at \
least {min_reps} repetitions and until {budget:g} s of timed work (at most {max_reps}). Each \
point runs in a fresh subprocess; the two libraries of a row run back to back.{repeats}
- Memory: peak = `ru_maxrss` of the worker (torch + one library imported); increment (Δ) = \
peak minus the RSS measured after imports, model and batch creation. MB = 2^20 bytes. The \
sk_dml worker does not import PML and vice versa, so compare Δ between libraries, not peaks.
- PML points with an estimated footprint above {pml_limit_gb:g} GB are not run \
(`{skipped}`); workers are also killed above {kill_gb:g} GB RSS or after {timeout:g} s.

## Targets

Speed-ups are PML time / sk_dml time of the benchmark's step (MLP forward, loss, backward \
through the MLP). The last column, not used for the verdict, is the same ratio for the loss \
alone (forward + backward to a leaf copy of the embeddings), which leaves out the fixed MLP \
cost that both libraries pay; a target about the loss alone is decided on that ratio, and its \
last column gives the step's.

{targets}

## Results

Speed-up = PML time / sk_dml time (higher is better for sk_dml); Δ ratio = PML Δ / sk_dml Δ \
(shown when the sk_dml Δ is at least 1 MB).

The machine is shared. Before timing, each worker waited for other processes to use under \
{load_threshold:g} cores (up to {idle_wait:g} s per try, {wait_budget:g} s per benchmark run; \
{waited:.0f} s were spent waiting) and timed again, up to {attempts} times, when they used \
more meanwhile. {quiet}

{results}

### The loss alone (diagnostic)

Forward + backward of the loss on a leaf copy of the embeddings, no MLP (median of at least \
as many repetitions, for half the time budget). The step time above minus this one is roughly \
the MLP's share, the same for both libraries.

{loss_alone}

![time vs batch]({png})

## Counterparts

{counterparts}

Formulations: triplet all/semihard/hard compute the same quantity in both libraries (mean of \
the positive triplet losses over the selected triplets; the window edges differ only on ties), \
so their loss values should agree. batch_hard: PML averages over the anchors with a non-zero \
loss, sk_dml over all valid anchors (equal when every anchor violates the margin). \
contrastive: PML uses unsquared hinges averaged over non-zero pairs, sk_dml squared terms over \
all pairs. npair: PML keeps one positive pair per class. lifted: PML's LiftedStructureLoss \
takes the logsumexp over the negatives of both members of each ordered positive pair (smooth \
form, no `hard` variant), built as a |P| x |N| matrix. proxy_anchor: the same formula and \
proxies in both (values should agree). multi_similarity: the same formula and mined pairs, \
averaged over all B anchors in both (values should agree).

### Loss values at the largest batch both libraries ran

{values}

## PML memory estimate

`pml_estimate_bytes` in the script, with T the valid triplets, |P| and |N| the ordered \
positive and negative pairs of the batch: all-triplet paths {per_cell:g}·B³ + \
{per_triplet:g}·T bytes; LiftedStructureLoss {per_pn:g}·|P|·|N| bytes; others O(B²); plus \
{base_mb:.0f} MB. Coefficients were fitted (rounded up) to the measured Δ of PML runs at \
growing batch sizes.

{memory}
"""

REPEATS = (
    " Each point was measured {repeats} times, alternating the libraries: times are the "
    "medians of the runs, speed-ups the medians of the paired ratios (range in brackets in "
    "the targets), memory the largest run."
)
BUSY = (
    "{loaded} of {ran} points still ran on a busy machine: they are marked † and their times "
    "are upper bounds (a competing process slows the many small kernels of a B <= 256 step "
    "the most)."
)


def _table(header: tuple[str, ...], align: str, rows) -> str:
    """A markdown table; ``align`` holds one character per column: l(eft) or r(ight)."""
    rule = "|".join("--:" if a == "r" else "---" for a in align)
    return "\n".join(
        [
            f"| {' | '.join(header)} |",
            f"|{rule}|",
            *(f"| {' | '.join(map(str, r))} |" for r in rows),
        ]
    )


def _points(args):
    """(loss, mode, batch) of every case and batch, in the report's order."""
    return [(loss, mode, b) for loss, mode, _, _ in CASES for b in args.batches]


def _results_rows(idx, args):
    for loss, mode, batch in _points(args):
        sk, pml = idx.get((loss, mode, batch, "sk_dml")), idx.get((loss, mode, batch, "pml"))
        if sk is None or pml is None:
            continue
        sk_ok, pml_ok = sk["status"] == "ok", pml["status"] == "ok"
        ratio = (
            "-"
            if not (sk_ok and pml_ok) or sk["delta_rss_mb"] < 1
            else f"{pml['delta_rss_mb'] / sk['delta_rss_mb']:.1f}"
        )
        yield (
            loss, mode, batch,
            _fmt(sk["time_ms"], ".3f") + _mark(sk, args) if sk_ok else sk["status"],
            _fmt(pml["time_ms"], ".2f") + _mark(pml, args) if pml_ok else pml["status"],
            _fmt(_speedup(idx, loss, mode, batch), ".1f") + ("x" if pml_ok else ""),
            _fmt(sk.get("peak_rss_mb"), ".0f"), _fmt(sk.get("delta_rss_mb"), ".1f"),
            _fmt(pml.get("peak_rss_mb"), ".0f"), _fmt(pml.get("delta_rss_mb"), ".1f"), ratio,
        )  # fmt: skip


def _loss_alone_rows(idx, args):
    for loss, mode, batch in _points(args):
        sk_t = _get(idx, loss, mode, batch, "sk_dml", "loss_only_ms")
        pml_t = _get(idx, loss, mode, batch, "pml", "loss_only_ms")
        pml_row = idx.get((loss, mode, batch, "pml"))
        if sk_t is None or pml_row is None:
            continue
        speed = "-" if pml_t is None else f"{_speedup(idx, loss, mode, batch, 'loss_only_ms'):.1f}x"
        pml_time = _fmt(pml_t, ".2f") if pml_t is not None else pml_row["status"]
        yield loss, mode, batch, f"{sk_t:.3f}", pml_time, speed


def _value_rows(idx, args):
    for loss, mode, _, _ in CASES:
        both = [
            b
            for b in args.batches
            if _get(idx, loss, mode, b, "sk_dml", "loss_value") is not None
            and _get(idx, loss, mode, b, "pml", "loss_value") is not None
        ]
        if both:
            b = max(both)
            sk_v = _get(idx, loss, mode, b, "sk_dml", "loss_value")
            pml_v = _get(idx, loss, mode, b, "pml", "loss_value")
            rel = abs(sk_v - pml_v) / max(abs(pml_v), 1e-12)
            yield loss, mode, b, f"{sk_v:.6g}", f"{pml_v:.6g}", f"{rel:.1e}"


def _memory_rows(idx, args):
    for loss, mode, batch in _points(args):
        r = idx.get((loss, mode, batch, "pml"))
        if r is None or not (loss == "lifted" or (loss == "triplet" and mode != "batch_hard")):
            continue
        pos, neg, trip = pair_counts(batch, mode)
        yield (
            loss, mode, batch, f"{trip:,}", f"{pos * neg:,}", f"{r['estimate_mb']:,.0f}",
            _fmt(r.get("delta_rss_mb"), ",.0f"), r["status"],
        )  # fmt: skip


def write_markdown(rows, path: Path, args, png_name: str, wall_s: float) -> None:
    import pytorch_metric_learning
    import torch

    idx = _index(rows)
    ran = [r for r in rows if r["status"] == "ok"]
    loaded = [r for r in ran if r["external_load"] >= args.load_threshold]
    targets = [
        (doc, measured, "not measured" if met is None else ("**met**" if met else "**MISSED**"),
         diagnostic)
        for doc, measured, met, diagnostic in evaluate_targets(rows)
    ]  # fmt: skip
    omp_env = " ".join(f"{k}={v}" for k, v in OMP_ENV[args.omp_wait_policy].items())
    text = REPORT.format(
        command=_cmd_line(args.argv),
        date=_dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        wall_min=wall_s / 60,
        torch=torch.__version__,
        pml=pytorch_metric_learning.__version__,
        python=platform.python_version(),
        commit=args.commit,
        changed=(
            "; **WARNING: " + ", ".join(KERNEL_FILES) + " changed during the run**"
            if args.changed_during_run
            else ""
        ),
        cpu=_cpu_name(),
        cores=os.cpu_count(),
        threads=NUM_THREADS,
        omp=args.omp_wait_policy,
        omp_env=omp_env or "inherited",
        in_dim=IN_DIM,
        hidden=HIDDEN,
        emb_dim=EMB_DIM,
        ten=TEN_CLASSES,
        min_reps=args.min_reps,
        budget=args.budget,
        max_reps=args.max_reps,
        repeats=REPEATS.format(repeats=args.repeats) if args.repeats > 1 else "",
        pml_limit_gb=args.pml_limit_gb,
        skipped=SKIPPED,
        kill_gb=args.kill_gb,
        timeout=args.timeout,
        targets=_table(("target", "measured", "met", "loss alone (diagnostic)"), "llll", targets),
        load_threshold=args.load_threshold,
        idle_wait=args.idle_wait,
        wait_budget=args.wait_budget,
        waited=sum(r["waited_s"] for r in ran),
        attempts=args.attempts,
        quiet=(
            BUSY.format(loaded=len(loaded), ran=len(ran))
            if loaded
            else f"All {len(ran)} points ran on a quiet machine (no † below)."
        ),
        results=_table(
            (
                "loss",
                "mode",
                "B",
                "sk_dml ms",
                "PML ms",
                "speed-up",
                "sk_dml peak MB",
                "sk_dml Δ MB",
                "PML peak MB",
                "PML Δ MB",
                "Δ ratio",
            ),
            "llrrrrrrrrr",
            _results_rows(idx, args),
        ),  # fmt: skip
        loss_alone=_table(
            ("loss", "mode", "B", "sk_dml ms", "PML ms", "speed-up"),
            "llrrrr",
            _loss_alone_rows(idx, args),
        ),  # fmt: skip
        png=png_name,
        counterparts=_table(
            ("loss", "mode", "sk_dml", "PML"),
            "llll",
            ((loss, mode, f"`{sk}`", f"`{pml}`") for loss, mode, sk, pml in CASES),
        ),  # fmt: skip
        values=_table(
            ("loss", "mode", "B", "sk_dml", "PML", "rel. diff"), "llrrrr", _value_rows(idx, args)
        ),
        per_cell=PML_BYTES_PER_TRIPLET_CELL,
        per_triplet=PML_BYTES_PER_TRIPLET,
        per_pn=PML_BYTES_PER_PN_CELL,
        base_mb=PML_BASE_BYTES / 2**20,
        memory=_table(
            (
                "loss",
                "mode",
                "B",
                "T",
                "\\|P\\|·\\|N\\|",
                "estimate MB",
                "measured PML Δ MB",
                "status",
            ),
            "llrrrrrl",
            _memory_rows(idx, args),
        ),  # fmt: skip
    )
    path.write_text(text)


def write_plot(rows, path: Path, batches) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = _index(rows)
    cases = [c for c in CASES if any((r["loss"], r["mode"]) == c[:2] for r in rows)]
    ncols = min(4, len(cases))
    nrows = math.ceil(len(cases) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.4 * nrows), squeeze=False)
    for ax, (loss, mode, _, _) in zip(axes.flat, cases, strict=False):
        for library, style in (("sk_dml", "o-"), ("pml", "s--")):
            pts = [(b, _get(idx, loss, mode, b, library, "time_ms")) for b in batches]
            pts = [(b, t) for b, t in pts if t is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=library)
        skipped = [
            b for b in batches if (r := idx.get((loss, mode, b, "pml"))) and r["status"] != "ok"
        ]
        title = f"{loss}" + ("" if mode == "-" else f" ({mode})")
        if skipped:
            title += "\nPML not run at B=" + ",".join(map(str, skipped))
        ax.set_title(title, fontsize=9)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(list(batches))
        ax.set_xticklabels([str(b) for b in batches])
        ax.set_xlabel("batch size")
        ax.set_ylabel("fwd+bwd time (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(cases) :]:
        ax.axis("off")
    fig.suptitle("sk_dml vs pytorch-metric-learning: forward + backward time, CPU, 2 threads")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke test: B in {64, 256}, fewer repetitions, *_quick outputs",
    )
    p.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=None,
        help="batch sizes (default: 64 128 256 512 1024; quick: 64 256)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of timed repetitions per point (default 1.0; quick 0.2)",
    )
    p.add_argument("--min-reps", type=int, default=None, help="default 3; quick 2")
    p.add_argument("--max-reps", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=120.0, help="per-worker time limit (s)")
    p.add_argument(
        "--pml-limit-gb",
        type=float,
        default=6.0,
        help="skip PML points whose estimated memory is above this",
    )
    p.add_argument(
        "--kill-gb", type=float, default=8.0, help="kill a worker whose RSS goes above this"
    )
    p.add_argument(
        "--load-threshold",
        type=float,
        default=0.25,
        help="time a point again if other processes used more CPU cores than this",
    )
    p.add_argument("--attempts", type=int, default=2, help="timed runs per point at most")
    p.add_argument(
        "--idle-wait",
        type=float,
        default=20.0,
        help="seconds to wait for a quiet machine before each timed run, at most",
    )
    p.add_argument(
        "--wait-budget",
        type=float,
        default=None,
        help="total seconds of such waiting per benchmark run (default 240; quick 30)",
    )
    p.add_argument(
        "--omp-wait-policy",
        choices=tuple(OMP_ENV),
        default="spin",
        help="how the workers' OpenMP threads wait: spin (default) = GOMP_SPINCOUNT=1000, a "
        "short spin then sleep; passive/active = OMP_WAIT_POLICY; inherit = leave the "
        "environment alone",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="measure each point this many times, alternating the libraries, and report the "
        "median (for a noisy machine; the speed-up is then the median of the paired ratios)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="LOSS[:MODE]",
        help="run only these cases, e.g. triplet:all lifted",
    )
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    args.argv = list(argv)
    if args.batches is None:
        args.batches = QUICK_BATCHES if args.quick else FULL_BATCHES
    args.batches = tuple(sorted(set(args.batches)))
    if args.budget is None:
        args.budget = 0.2 if args.quick else 1.0
    if args.wait_budget is None:
        args.wait_budget = 30.0 if args.quick else 240.0
    if args.min_reps is None:
        args.min_reps = 2 if args.quick else 3
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        print(RESULT_TAG + json.dumps(worker(json.loads(argv[1]))), flush=True)
        return 0

    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = "loss_kernels_quick" if args.quick else "loss_kernels"
    args.commit = _git_commit()  # before the run: the working tree may change meanwhile
    fingerprint = _kernel_fingerprint()
    start = time.monotonic()
    rows = run_all(args)
    wall = time.monotonic() - start
    args.changed_during_run = _kernel_fingerprint() != fingerprint
    if args.changed_during_run:
        print("WARNING: " + ", ".join(KERNEL_FILES) + " changed during the run")
    write_csv(rows, args.out_dir / f"{stem}.csv")
    write_plot(rows, args.out_dir / f"{stem}.png", args.batches)
    write_markdown(rows, args.out_dir / f"{stem}.md", args, f"{stem}.png", wall)
    print(f"\nwrote {args.out_dir / stem}.{{csv,md,png}} in {wall / 60:.1f} min")
    for doc, measured, met, diagnostic in evaluate_targets(rows):
        verdict = "not measured" if met is None else ("met" if met else "MISSED")
        print(
            f"  {verdict:12s} {doc}: {measured}"
            + (f" (loss alone: {diagnostic})" if diagnostic else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
