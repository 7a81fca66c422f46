"""The notebook service for real: one bare Debian 12 container converged with roles/notebooks.

One converge serves every check (CI time): a second deploy must change nothing, verify must pass,
then headless Chromium logs in over HTTPS as a lab member, opens a notebook with the managed
kernel and runs a cell that imports both frameworks (screenshot kept in reports/notebooks/),
and a user outside the lab group is refused at the login page. The hub's secrets must be
root-only files that appear in no log or report of the run.

There is no systemd in the container: the role installs the unit and says it is not started;
this test starts the hub exactly as the unit's ExecStart, WorkingDirectory and Environment say.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dlws.roles.notebooks import UNIT
from dlws.sandbox.docker_env import container_ip, ensure_container, remove_container
from dlws.sandbox.images import ensure_debian_image
from dlws.tls import spki_sha256_b64
from tests.helpers import BIN, ROOT, changed_operations, pyinfra_json

pytestmark = pytest.mark.integration
INVENTORY = "tests/fixtures/notebooks/inventory.py"
CONTAINER = os.environ.get("DLWS_NOTEBOOKS_CONTAINER", "dlws-i17-notebooks")
REPORT_DIR = ROOT / "reports" / "notebooks"
MEMBER, OUTSIDER = "researcher", "outsider"
OWN_KERNEL = "my own kernel"
STATE = "/var/lib/dlws/hub"
SECRET_FILES = [f"{STATE}/jupyterhub_cookie_secret", f"{STATE}/proxy_token",
                f"{STATE}/verify_token", "/etc/dlws/hub/tls.key"]


def docker_exec(*args: str, stdin: str | None = None, check: bool = True):
    return subprocess.run(["docker", "exec", "-i", CONTAINER, *args], input=stdin,
                          capture_output=True, text=True, check=check)


def make_certificate(folder: Path, name: str, address: str) -> None:
    """A certificate and key for the hub, as a lab's CA would hand them over (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address(address))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    (folder / "hub.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = folder / "hub.key"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)


def start_hub_as_the_unit_says() -> None:
    unit = dict(line.split("=", 1) for line in docker_exec("cat", UNIT).stdout.splitlines()
                if "=" in line and not line.startswith("#"))
    # The unit's words are quoted as systemd reads them (dlws/unitfile.py): unquote them the same
    # way ("%%" and "$$" are systemd's escapes of % and $), then quote them for the shell.
    def words(value: str) -> list[str]:
        return [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(value)]

    command = ["env", *words(unit["Environment"]), "nohup", *words(unit["ExecStart"])]
    docker_exec("sh", "-c", f"cd {shlex.quote(words(unit['WorkingDirectory'])[0])} && "
                f"{shlex.join(command)} > /var/log/dlws-jupyterhub.log 2>&1 &")


@pytest.fixture(scope="module")
def hub(docker_engine, tmp_path_factory):
    """The converged container, its hub running; a dict of what the tests need."""
    folder = tmp_path_factory.mktemp("notebooks")
    remove_container(CONTAINER)
    ensure_container(CONTAINER, ensure_debian_image("bookworm"))
    address = container_ip(CONTAINER)
    make_certificate(folder, CONTAINER, address)
    passwords = {MEMBER: secrets.token_urlsafe(12), OUTSIDER: secrets.token_urlsafe(12)}
    logins = folder / "logins"
    logins.write_text("".join(f"{user}:{password}\n" for user, password in passwords.items()))
    logins.chmod(0o600)
    env = {"DLWS_NOTEBOOKS_TLS_DIR": str(folder), "DLWS_NOTEBOOKS_LOGINS": str(logins),
           "DLWS_NOTEBOOKS_CONTAINER": CONTAINER}
    os.environ.update(env)  # verify and the deploy read the same inventory
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    first = pyinfra_json(INVENTORY, env=env)
    converge_s = time.monotonic() - started
    second = pyinfra_json(INVENTORY, env=env)
    (REPORT_DIR / "deploy.log").write_text(first[2] + second[2])
    # The outsider is a real account with a real password, only not in the lab group.
    docker_exec("sh", "-c", f"id {OUTSIDER} || useradd -m -s /bin/bash {OUTSIDER}")
    docker_exec("chpasswd", stdin=logins.read_text())
    # A kernel of the member's own, in their home: it must still be offered beside dlws's.
    own = json.dumps({"argv": ["/opt/dlws/venv/bin/python", "-m", "ipykernel_launcher", "-f",
                               "{connection_file}"], "display_name": OWN_KERNEL,
                      "language": "python"})
    docker_exec("su", "-s", "/bin/sh", MEMBER, "-c",
                "mkdir -p ~/.local/share/jupyter/kernels/mine && "
                "cat > ~/.local/share/jupyter/kernels/mine/kernel.json", stdin=own)
    start_hub_as_the_unit_says()
    answered = None
    for _ in range(60):
        answered = docker_exec("/opt/dlws/hub/bin/python", "-c",
                               "import ssl; print(ssl.get_server_certificate(('127.0.0.1', 8443)))",
                               check=False)
        if answered.returncode == 0:
            break
        time.sleep(1)
    yield {"first": first, "second": second, "address": address, "folder": folder,
           "passwords": passwords, "converge_s": converge_s, "answered": answered}
    for key in env:
        os.environ.pop(key, None)
    if not os.environ.get("DLWS_KEEP_CONTAINERS"):
        remove_container(CONTAINER)


def test_converges_and_a_second_run_changes_nothing(hub):
    rc, document, log = hub["first"]
    assert rc == 0, log[-4000:]
    print(f"first converge: {hub['converge_s']:.0f} s")
    rc, document, log = hub["second"]
    assert rc == 0, log[-4000:]
    assert document["results"]["totals"]["success"] == 0, changed_operations(document)
    assert "is installed, not started" in log, "the deploy did not say the hub is not started"
    assert hub["answered"].returncode == 0, (
        docker_exec("tail", "-50", "/var/log/dlws-jupyterhub.log", check=False).stdout)


def test_verify_passes(hub):
    out = subprocess.run(
        [str(BIN / "pytest"), "verify", "--inventory", INVENTORY, "-p", "no:cacheprovider",
         "-q", "-rfEs", "--no-header", f"--junitxml={REPORT_DIR / 'verify.xml'}"],
        cwd=ROOT, capture_output=True, text=True)
    (REPORT_DIR / "verify.log").write_text(out.stdout + out.stderr)
    assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    # Every notebook check ran: none of them may pass by skipping.
    import xml.etree.ElementTree as ET

    cases = [case for case in ET.parse(REPORT_DIR / "verify.xml").iter("testcase")
             if "test_notebooks" in case.get("classname", "")]
    skipped = [case.get("name") for case in cases if case.find("skipped") is not None]
    assert len(cases) >= 9 and not skipped, f"notebook checks: {len(cases)}, skipped: {skipped}"


@pytest.fixture(scope="module")
def browser(hub):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("Debian's chromium and chromium-driver are needed: bin/dlws test installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = hub["folder"] / "chromium-profile"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={profile}", "--window-size=1400,900",
                 # Trust exactly the hub's key (what a lab does with its CA), nothing broader.
                 "--ignore-certificate-errors-spki-list="
                 + spki_sha256_b64((hub["folder"] / "hub.crt").read_bytes())):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    session.set_page_load_timeout(120)
    yield session
    session.quit()


def _login(browser, hub, user: str) -> None:
    from selenium.webdriver.common.by import By

    login = f"https://{hub['address']}:8443/hub/login"
    browser.get(login)
    browser.delete_all_cookies()  # the cookies of this origin: a fresh visitor
    browser.get(login)
    browser.find_element(By.ID, "username_input").send_keys(user)
    browser.find_element(By.ID, "password_input").send_keys(hub["passwords"][user])
    browser.find_element(By.ID, "login_submit").click()


def test_outsider_is_refused_at_login(hub, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    _login(browser, hub, OUTSIDER)
    WebDriverWait(browser, 60).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "#login-main, .login_error")))
    time.sleep(1)
    page = browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(REPORT_DIR / "outsider-refused.png"))
    assert "/hub/login" in browser.current_url, browser.current_url
    assert "Invalid username or password" in page, page[-1500:]
    assert "This workstation has no NVIDIA GPU" in page, page[-1500:]  # the hub names the GPUs
    # No session came of it: the hub's home page sends the browser back to the login form.
    browser.get(f"https://{hub['address']}:8443/hub/home")
    WebDriverWait(browser, 30).until(lambda b: "/hub/login" in b.current_url)


def test_lab_member_runs_both_frameworks_in_the_managed_kernel(hub, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    _login(browser, hub, MEMBER)
    wait = WebDriverWait(browser, 240)
    # The hub starts the member's server and sends the browser to JupyterLab; `?reset` opens
    # a fresh workspace (the launcher) whatever an earlier visit left open.
    wait.until(lambda b: f"/user/{MEMBER}/lab" in b.current_url)
    browser.get(f"https://{hub['address']}:8443/user/{MEMBER}/lab?reset")
    card = wait.until(ready.element_to_be_clickable(
        (By.CSS_SELECTOR, '.jp-LauncherCard[data-category="Notebook"][title^="dlws:"]')))
    assert "hub/login" not in browser.current_url
    titles = [c.get_attribute("title") for c in browser.find_elements(
        By.CSS_SELECTOR, '.jp-LauncherCard[data-category="Notebook"]')]
    # dlws's kernel and the member's own; not the hub's Python (it has no frameworks).
    assert sorted(titles) == sorted([card.get_attribute("title"), OWN_KERNEL]), (
        f"the launcher's notebook kernels: {titles}")
    card.click()
    editor = wait.until(ready.element_to_be_clickable(
        (By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell .cm-content")))
    # The kernel must be up before the cell runs (the status bar names it: "dlws: ... | Idle").
    wait.until(lambda b: "| Idle" in b.find_element(By.CSS_SELECTOR, "#jp-main-statusbar").text)
    editor.click()
    editor.send_keys("import tensorflow as tf, torch, sys\n"
                     "print('TF', tf.__version__, 'TORCH', torch.__version__, sys.executable)")
    editor.send_keys(Keys.SHIFT, Keys.ENTER)
    area = ".jp-NotebookPanel .jp-Cell .jp-OutputArea"
    wait.until(lambda b: any(word in b.find_element(By.CSS_SELECTOR, area).text
                             for word in ("TORCH ", "Error")))
    output = browser.find_element(By.CSS_SELECTOR, area)
    for button in browser.find_elements(By.XPATH, "//button[normalize-space()='No']"):
        button.click()  # JupyterLab's "news?" question: declined, it would cover the output
    time.sleep(1)
    kernel = browser.find_element(By.CSS_SELECTOR,
                                  ".jp-NotebookPanel .jp-KernelName, .jp-Toolbar-kernelName").text
    browser.save_screenshot(str(REPORT_DIR / "notebook.png"))
    assert re.search(r"^TF \d+\.\d+\S* TORCH \d+\.\d+\S* /opt/dlws/venv/bin/python$",
                     output.text, re.M), output.text
    assert kernel.startswith("dlws:"), f"the notebook's kernel is {kernel!r}"


def test_secrets_are_root_only_and_in_no_log_or_report(hub):
    values = []
    for path in SECRET_FILES:
        mode = docker_exec("stat", "-c", "%U %a", path).stdout.split()
        assert mode == ["root", "600"], f"{path}: {mode}"
        values.append(docker_exec("cat", path).stdout.strip())
    hub_log = docker_exec("cat", "/var/log/dlws-jupyterhub.log").stdout
    texts = {p.name: p.read_text(errors="replace") for p in REPORT_DIR.iterdir()
             if p.suffix in (".log", ".xml", ".json")}
    texts["hub log"] = hub_log
    texts["deploy json"] = json.dumps(hub["first"][1]) + json.dumps(hub["second"][1])
    key_body = "".join(values[-1].splitlines()[1:-1])
    for name, text in texts.items():
        for path, value in zip(SECRET_FILES[:-1], values[:-1], strict=True):
            assert value not in text, f"the secret of {path} appears in {name}"
        assert key_body[:64] not in text.replace("\n", ""), f"the TLS key appears in {name}"
