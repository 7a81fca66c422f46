"""Checks of roles/cuda: the planned toolkit version, and nvcc compiling a real kernel."""

from __future__ import annotations

import re

import pytest

from dlws.command import all_of, cmd, sh

PROBE = r"""
#include <cstdio>
__global__ void add(int n, const float *x, float *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] + y[i];
}
int main() {
  const int n = 1 << 20;
  float *x, *y;
  if (cudaMallocManaged(&x, n * sizeof(float)) != cudaSuccess) { puts("no-device"); return 3; }
  cudaMallocManaged(&y, n * sizeof(float));
  for (int i = 0; i < n; i++) { x[i] = 1.0f; y[i] = 2.0f; }
  add<<<(n + 255) / 256, 256>>>(n, x, y);
  cudaDeviceSynchronize();
  for (int i = 0; i < n; i++) if (y[i] != 3.0f) { printf("wrong %d %f\n", i, y[i]); return 1; }
  puts("ok");
  return 0;
}
"""


@pytest.fixture(scope="module")
def nvcc(host, plan):
    if not plan.cuda.version:
        pytest.skip("the plan installs no CUDA toolkit (cuda_version, or no GPU declared)")
    for candidate in ("nvcc", "/usr/local/cuda/bin/nvcc"):
        if host.run(cmd("command", "-v", candidate)).rc == 0:
            return candidate
    pytest.fail(f"nvcc not found (plan: CUDA {plan.cuda.version} from {plan.cuda.source})")


def test_cuda_toolkit_version_is_planned(host, plan, nvcc):
    """nvcc reports the planned CUDA release."""
    out = host.run(cmd(nvcc, "--version"))
    found = re.search(r"release (\d+\.\d+)", out.stdout)
    assert found, f"nvcc --version printed no release:\n{out.stdout}{out.stderr}"
    assert found.group(1) == plan.cuda.version, (
        f"nvcc is CUDA {found.group(1)}, plan says {plan.cuda.version}")


def test_nvcc_compiles_and_runs_a_kernel(host, target, plan, nvcc):
    """nvcc compiles a CUDA kernel that runs correctly on a GPU host and refuses to run without."""
    workdir = host.check_output("mktemp -d")
    host.run(sh("printf '%s\\n' {} > {}", PROBE, f"{workdir}/probe.cu"))
    build = host.run(all_of([cmd("cd", "--", workdir), cmd(nvcc, "-o", "probe", "probe.cu")]))
    assert build.rc == 0, f"nvcc failed to compile a kernel:\n{build.stderr[-3000:]}"
    run = host.run(cmd(f"{workdir}/probe"))
    host.run(cmd("rm", "-rf", "--", workdir))
    if target["gpu_count"] == 0:
        # Compiled and linked against the runtime; with no GPU declared, running it must say
        # so rather than pretend.
        assert run.rc != 0, f"the probe ran without a GPU?\n{run.stdout}"
        return
    assert run.rc == 0 and run.stdout.strip() == "ok", (
        f"the compiled kernel did not run correctly on the GPU (rc={run.rc}):\n"
        f"{run.stdout}{run.stderr}")
