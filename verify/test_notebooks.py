"""Checks of roles/notebooks: the hub runs, serves its certificate, admits the lab only, trains."""

from __future__ import annotations

import http.cookiejar
import json
import re
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from dlws import unitfile
from dlws.command import cmd
from dlws.controller_code import Script
from dlws.roles.base import GPU_GROUPS
from dlws.roles.notebooks import (
    HIDDEN_KERNEL,
    KERNEL_NAME,
    SERVICE,
    UNIT,
    gpu_announcement,
    paths,
    url,
)
from dlws.tls import fingerprint

from .helpers import integrity_refusal, run_script, train_check_data_args
from .integrity import RECORD_CHECK, record_report

# One notebook run per host, shared by the checks that read it.
_RUNS: dict[str, tuple[int, dict, str]] = {}
# The notebook check as the controller holds it (the copy the deploy installs is not what runs).
NOTEBOOK_CHECK = Script.from_path(Path(__file__).resolve().parent.parent / "roles" / "notebooks"
                                  / "files" / "notebook_check.py")


# Module scope: autouse fixtures of a scope are set up before its other fixtures, so a host
# without the service skips before controller_tls or notebook_run would read its files.
@pytest.fixture(scope="module", autouse=True)
def _notebooks_enabled(target):
    if not target["notebooks_enabled"]:
        pytest.skip("notebooks_enabled is False: no notebook service on this host")


@pytest.fixture(scope="module")
def where(target) -> dict[str, str]:
    return paths(target.data)


def _on_host_python(host, target, code: str):
    """Run Python in the hub's environment on the host (its own view of the hub), as root: only
    once that environment's files match what was installed."""
    _refuse_unchecked_hub(host, target)
    return host.run(cmd(f"{target['notebooks_prefix']}/bin/python", "-c", code))


def _refuse_unchecked_hub(host, target) -> None:
    refused = integrity_refusal(host, target, target["notebooks_prefix"], (HIDDEN_KERNEL,))
    if refused:
        pytest.fail(refused, pytrace=False)


def test_hub_environment_files_match_their_records(host, target, record_fact):
    """The hub's environment (notebooks_prefix), as the shared one: each RECORD's files, no
    importable file that no RECORD lists, its bytecode what the deploy recorded or what its
    sources compile to; ipykernel's own kernel spec, which the deploy removes, may be absent.
    Its Python runs as root in the checks below (the hub's own view, the
    notebook run's client), each of which waits for this."""
    prefix = target["notebooks_prefix"]
    report = record_report(host, target, prefix, (HIDDEN_KERNEL,))
    assert report.get("script_sha256") == RECORD_CHECK.sha256, report
    problems = report.get("problems", [report.get("error")])
    record_fact("notebooks.integrity.files", report.get("files"))
    assert not problems, (f"{report.get('problem_count', 1)} files of {prefix} differ from what "
                          f"was installed (verify_integrity = {target['verify_integrity']}; "
                          "reinstall the named distributions): " + "; ".join(problems[:40]))
    assert report["files"] > 0, f"no RECORD listed any file: {report}"


def test_hub_service_running(host, target, where):
    """The JupyterHub unit starts the planned hub with its config, and the hub runs (as root)."""
    unit = host.file(UNIT)
    assert unit.exists, f"{UNIT} is missing"
    # The line as the role writes it (dlws.unitfile quotes each word as systemd reads it).
    exec_start = unitfile.exec_line(f"{target['notebooks_prefix']}/bin/jupyterhub", "-f",
                                    where["config"])
    assert f"ExecStart={exec_start}" in (
        unit.content_string), unit.content_string
    if host.file("/run/systemd/system").is_directory:
        service = host.service(SERVICE)
        assert service.is_enabled, f"{SERVICE} is not enabled"
        status = host.run(cmd("systemctl", "status", "--", SERVICE)).stdout
        assert service.is_running, f"{SERVICE} is not running: {status}"
        return
    # No systemd here (a container): the hub must run as root exactly as the unit says.
    ps = host.run("ps -eo user=,args=")
    running = [line for line in ps.stdout.splitlines()
               if f"jupyterhub -f {where['config']}" in line]
    assert running, f"no hub process `jupyterhub -f {where['config']}`; ps:\n{ps.stdout}"
    assert running[0].split()[0] == "root", f"the hub does not run as root: {running[0]}"


def test_hub_serves_https_with_its_certificate(host, target, where, record_fact):
    """The hub serves HTTPS with the certificate the inventory gave it."""
    if target["notebooks_plain_http"]:
        pytest.skip("notebooks_plain_http is True: the hub serves plain HTTP (TLS ends before it)")
    served = _on_host_python(host, target, (
        "import hashlib, ssl, sys, urllib.parse\n"
        f"u = urllib.parse.urlsplit({url(target.data)!r})\n"
        "print(hashlib.sha256(ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate("
        "(u.hostname, u.port)))).hexdigest())"))
    assert served.rc == 0, f"no TLS answer at {url(target.data)}: {served.stderr}"
    on_host = fingerprint(host.file(where["cert"]).content_string)
    digest = served.stdout.strip().upper()
    served_fingerprint = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
    record_fact("notebooks.certificate_sha256", on_host)
    assert served_fingerprint == on_host, (
        f"the hub serves {served_fingerprint}, its certificate file {where['cert']} is {on_host}")
    declared = target["notebooks_tls_cert"]
    if declared:
        expected = fingerprint(Path(declared).expanduser().read_text())
        assert on_host == expected, (
            f"{where['cert']} is {on_host}; the inventory's notebooks_tls_cert {declared} is "
            f"{expected}")


def test_hub_api_answers(host, target, where):
    """The hub's REST API answers with the planned JupyterHub version."""
    code = (
        "import json, ssl, urllib.request\n"
        f"ctx = ssl.create_default_context(cafile={where['cert']!r}); ctx.check_hostname = False\n"
        f"print(urllib.request.urlopen({url(target.data) + '/hub/api'!r}, context=ctx,"
        " timeout=30).read().decode())")
    out = _on_host_python(host, target, code)
    assert out.rc == 0, f"{url(target.data)}/hub/api does not answer: {out.stderr[-1500:]}"
    assert json.loads(out.stdout).get("version") == target["notebooks_jupyterhub_version"], (
        out.stdout)


def test_plain_http_is_off(host, target):
    """The hub refuses plain HTTP unless notebooks_plain_http is declared."""
    if target["notebooks_plain_http"]:
        pytest.skip("notebooks_plain_http is True: plain HTTP is declared")
    plain = url(target.data).replace("https://", "http://", 1)
    out = _on_host_python(host, target, (
        "import urllib.request\n"
        f"r = urllib.request.urlopen({plain + '/hub/login'!r}, timeout=30)\n"
        "print(r.status, r.read()[:200])"))
    assert out.rc != 0, f"{plain} answers plain HTTP: {out.stdout}"


def test_hub_secrets_are_root_only(host, target, where):
    """The hub's state folder and secrets are readable by root only."""
    state = host.file(target["notebooks_state_dir"])
    assert state.user == "root" and state.mode & 0o077 == 0, (
        f"{state.path}: owner {state.user}, mode {oct(state.mode)}; must be root-only")
    secrets = ["cookie_secret", "proxy_token", "verify_token"]
    if not target["notebooks_plain_http"]:
        secrets.append("key")
    for name in secrets:
        item = host.file(where[name])
        assert item.exists, f"{where[name]} is missing"
        assert item.user == "root" and item.mode & 0o077 == 0, (
            f"{item.path}: owner {item.user}, mode {oct(item.mode)}; must be root-only (0600)")
    config = host.file(where["config"]).content_string
    for name in ("cookie_secret", "proxy_token", "verify_token"):
        value = host.run(cmd("cat", "--", where[name])).stdout.strip()
        assert len(value) >= 32, f"{where[name]} holds no secret"
        assert value not in config, f"a secret from {where[name]} is written in {where['config']}"


def test_managed_environment_is_a_kernel_for_lab_users(host, target, where):
    """The managed environment is a Jupyter kernel every lab user sees."""
    spec = json.loads(host.file(where["kernel"]).content_string)
    assert spec["argv"][0] == f"{target['python_env_prefix']}/bin/python", spec
    user = target["base_lab_users"][0]
    listing = cmd(f"{target['notebooks_prefix']}/bin/jupyter", "kernelspec", "list", "--json")
    out = host.run(cmd("su", "-s", "/bin/sh", "-c", listing, "--", user))
    assert out.rc == 0, f"jupyter kernelspec list as {user}: {out.stderr}"
    kernels = json.loads(out.stdout)["kernelspecs"]
    assert KERNEL_NAME in kernels, f"{user} does not see the kernel {KERNEL_NAME}: {list(kernels)}"
    assert kernels[KERNEL_NAME]["resource_dir"] == where["kernel"].rsplit("/", 1)[0], kernels


def test_lab_user_server_offers_the_managed_kernel_only(host, target, where):
    """A lab user's server offers the managed kernel and no other."""
    rc, report, stderr = notebook_run(host, target, where)
    assert rc == 0 and report, f"the notebook run failed (exit {rc}): {stderr[-2000:]}"
    offered = report["kernelspecs"]
    assert KERNEL_NAME in offered, f"{report['user']}'s server offers {offered}"
    # The hub's own Python has no frameworks: users must not pick it by mistake.
    assert "python3" not in offered, f"{report['user']}'s server offers {offered}"


def test_hub_page_lists_the_gpus(host, target, plan, where):
    """The hub's login page announces the planned GPUs."""
    code = (
        "import ssl, urllib.request\n"
        f"ctx = ssl.create_default_context(cafile={where['cert']!r}); ctx.check_hostname = False\n"
        f"print(urllib.request.urlopen({url(target.data) + '/hub/login'!r}, context=ctx,"
        " timeout=30).read().decode())")
    out = _on_host_python(host, target, code)
    assert out.rc == 0, out.stderr[-1500:]
    assert gpu_announcement(plan.gpu.models) in out.stdout, (
        f"the login page does not say {gpu_announcement(plan.gpu.models)!r}:\n{out.stdout[-2000:]}")


# --- logins, from the controller over the network -------------------------------------------

def _controller_url(target) -> str:
    if target["verify_notebooks_url"]:
        return target["verify_notebooks_url"].rstrip("/")
    scheme = "http" if target["notebooks_plain_http"] else "https"
    if target.spec.startswith("docker://"):
        name = target.spec.split("://", 1)[1]
        address = subprocess.run(
            ["docker", "inspect", "-f",
             "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
            capture_output=True, text=True).stdout.split()
        hostname = address[0] if address else name
    elif target.spec.startswith("local://"):
        hostname = "127.0.0.1"
    else:
        hostname = urllib.parse.urlsplit(target.spec).hostname
    return f"{scheme}://{hostname}:{target['notebooks_port']}"


def _logins(target) -> list[tuple[str, str]]:
    if not target["verify_notebooks_logins"]:
        pytest.skip("verify_notebooks_logins is not set: no account to log in with")
    pairs = []
    for line in Path(target["verify_notebooks_logins"]).expanduser().read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            user, _, password = line.partition(":")
            pairs.append((user.strip(), password))
    return pairs


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def log_in(base: str, user: str, password: str, context) -> tuple[int, str, str]:
    """POST the hub's login form as a browser does: (status, Location, page text)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                         urllib.request.HTTPSHandler(context=context),
                                         _NoRedirect())
    page = opener.open(f"{base}/hub/login", timeout=30).read().decode()
    xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', page)
    form = {"username": user, "password": password, **({"_xsrf": xsrf[1]} if xsrf else {})}
    try:
        response = opener.open(f"{base}/hub/login?next=", data=urllib.parse.urlencode(
            form).encode(), timeout=60)
        return response.status, response.headers.get("Location", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location", ""), error.read().decode(
            errors="replace")


@pytest.fixture(scope="module")
def controller_tls(host, target, where):
    """An SSL context that trusts the hub's certificate only (read from the host)."""
    if target["notebooks_plain_http"]:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as handle:
        handle.write(host.file(where["cert"]).content_string)
    context = ssl.create_default_context(cafile=handle.name)
    context.check_hostname = False  # pinned to the one certificate: the name adds nothing
    Path(handle.name).unlink()
    return context


def test_lab_members_log_in_and_others_are_refused(target, controller_tls):
    """Lab members log in to the hub; anyone else is refused."""
    logins = _logins(target)
    members = set(target["base_lab_users"])
    base = _controller_url(target)
    results = []
    for user, password in logins:
        status, location, page = log_in(base, user, password, controller_tls)
        admitted = status == 302 and "/hub/login" not in location
        results.append(f"{user}: HTTP {status} -> {location or '-'}"
                       + ("" if admitted else f" ({_login_error(page)})"))
        assert admitted == (user in members), (
            f"{user} ({'a lab member' if user in members else 'not in the lab'}) was "
            f"{'admitted' if admitted else 'refused'} at {base}: " + "; ".join(results))
    assert {user for user, _ in logins} & members, (
        "verify_notebooks_logins lists no lab member: nothing shows that the lab gets in")
    assert {user for user, _ in logins} - members, (
        "verify_notebooks_logins lists nobody outside the lab: nothing shows a refusal")


def _login_error(page: str) -> str:
    found = re.search(r'class="[^"]*login_error[^"]*"[^>]*>\s*([^<]+)', page)
    return found[1].strip() if found else "no error message on the page"


# --- a notebook through the hub's API, as a lab user ----------------------------------------

def _cells(target) -> list[str]:
    args = train_check_data_args(target)
    if target["gpu_count"] > 0:
        args.append("--require-gpu")  # where a GPU is declared, the CPU is a failure
    frameworks = list(target["verify_frameworks"])
    return [
        "import grp, json, os, sys\n"
        "groups = sorted(grp.getgrgid(g).gr_name for g in os.getgroups())\n"
        "print('DLWS-GROUPS', json.dumps(groups))\n"
        "print('DLWS-PYTHON', sys.executable)",
        "import json, runpy, tempfile\n"
        f"check = runpy.run_path({target['frameworks_train_check_path']!r})\n"
        "results = []\n"
        f"for framework in {frameworks!r}:\n"
        "    out = tempfile.NamedTemporaryFile(suffix='.json', delete=False).name\n"
        f"    code = check['main']({args!r} + ['--framework', framework, '--json', out])\n"
        "    results += json.load(open(out))['results']\n"
        "print('DLWS-TRAIN', json.dumps(results))",
    ]


def notebook_run(host, target, where) -> tuple[int, dict, str]:
    if target.name not in _RUNS:
        _refuse_unchecked_hub(host, target)  # the client runs under the hub's Python, as root
        args = ["--url", url(target.data), "--token-file", where["verify_token"],
                "--user", target["base_lab_users"][0], "--kernel", KERNEL_NAME]
        if not target["notebooks_plain_http"]:
            args += ["--cafile", where["cert"]]
        for cell in _cells(target):
            args += ["--cell", cell]
        runs, error = run_script(host, NOTEBOOK_CHECK, f"{target['notebooks_prefix']}/bin/python",
                                 {"notebook": args}, "the notebook check")
        _RUNS[target.name] = runs.get("notebook", (2, {}, error))
    return _RUNS[target.name]


def _printed(report: dict, marker: str):
    for cell in report.get("cells", []):
        for output in cell["outputs"]:
            for line in output.get("text", "").splitlines():
                if line.startswith(marker + " "):
                    return json.loads(line[len(marker) + 1:])
    return None


def test_lab_user_notebook_sees_the_gpu_groups(host, target, where):
    """A lab user's notebook runs the managed kernel in the GPU groups and the notebooks group."""
    rc, report, stderr = notebook_run(host, target, where)
    assert rc == 0 and report, f"the notebook run failed (exit {rc}): {stderr[-2000:]}"
    assert report["kernel"] == KERNEL_NAME, report
    groups = _printed(report, "DLWS-GROUPS")
    assert groups is not None, f"the first cell printed no groups: {report['cells'][:1]}"
    missing = {*GPU_GROUPS, target["notebooks_group"]} - set(groups)
    assert not missing, f"{report['user']}'s notebook lacks the groups {sorted(missing)}: {groups}"


def test_lab_user_notebook_trains_mnist_with_the_managed_kernel(host, target, plan, where,
                                                                 record_fact):
    """A lab user's notebook trains MNIST in the managed kernel to the accuracy bar."""
    rc, report, stderr = notebook_run(host, target, where)
    assert rc == 0 and report, f"the notebook run failed (exit {rc}): {stderr[-2000:]}"
    statuses = [cell["status"] for cell in report["cells"]]
    errors = [o for cell in report["cells"] for o in cell["outputs"]
              if o["output_type"] == "error"]
    assert statuses and all(s == "ok" for s in statuses), (
        f"cells: {statuses}; errors: {[(e['ename'], e['evalue']) for e in errors]}")
    results = _printed(report, "DLWS-TRAIN")
    assert results, f"no training result printed: {report['cells'][-1]}"
    expected_device = "gpu" if target["gpu_count"] > 0 else "cpu"
    for result in results:
        framework = result.get("framework")
        record_fact(f"notebooks.{framework}.test_accuracy", result.get("test_accuracy"))
        assert result.get("status") == "passed", f"{framework} in the notebook: {result}"
        assert result.get("device") == expected_device, (
            f"{framework} in the notebook trained on {result.get('device')}, expected "
            f"{expected_device}: {result}")
    assert {r.get("framework") for r in results} == set(target["verify_frameworks"]), results
