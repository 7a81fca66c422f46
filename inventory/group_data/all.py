"""Data for every host: each key dlws reads, at its default, with what it means.

Copy a line into a host, a group file (group_data/<group>.py) or here to change it.
tests/validate/test_schema.py keeps this file equal to the roles' DEFAULTS (tools/group_data.py
writes it).
"""

# --- dlws.declare (What each host is declared to have: the hardware and the bars verify holds it to.)
# GPUs the host has; 0 = CPU profile (GPU checks skip, saying so). More than 0: a missing GPU is a
# failure, never a skip (at most 64)
gpu_count = 0
# the GPU model as nvidia-smi names it (e.g. 'NVIDIA GeForce RTX 4090') or a PCI ID ('10de:2684');
# required when gpu_count > 0, refused when it is 0
gpu_model = None
# least memory per GPU, GiB (at most 1024)
gpu_min_memory_gib = None
# least enforced GPU power limit as a fraction of the card's default; lower it where the lab caps
# power on purpose (nvidia-smi -pl)
gpu_min_power_limit_fraction = 1.0
# least CPU cores (nproc), 1 to 4096
hardware_min_cpu_cores = 1
# least RAM, GiB (at most 65536)
hardware_min_memory_gib = 1
# the data disk's mount point (the seed's 'fast storage'); only read by verify
hardware_data_dir = '/var/tmp'
# least free space on the data disk, GiB
hardware_min_free_gib = 1
# least sequential read throughput of the data disk, MiB/s
hardware_min_read_mib_s = 50
# frameworks the training check runs: the default = each one the host installs; a list set here may
# name only frameworks the host installs (not frameworks_X = 'none')
verify_frameworks = ['tensorflow', 'torch']
# test accuracy bar of the MNIST training check on the full data set
verify_min_accuracy = 0.95
# bar on the 5,000-image offline sample (used when no MNIST copy is reachable)
verify_sample_min_accuracy = 0.85
# a lab mirror's mnist.npz on the host, tried first
verify_mnist_path = None
# epochs of the training check (the seed's 5), 1 to 100
verify_epochs = 5
# never try to download MNIST on the host
verify_offline = False
# how verify checks the environment's files against their RECORDs before any of its code runs as
# root: full = every file's size and sha256 (hashed in parallel on the host; the sandbox's 2.2 GB in
# seconds, docs/benchmarks.md); fast = size, and no file modified after its RECORD was written (a
# change that keeps the size and resets the mtime passes: use it only where the full check is too
# slow) [one of: 'full', 'fast']
verify_integrity = 'full'
# least share of the GPU model's expected dense bf16 TFLOP/s the matmul probe must reach on each GPU
# (below: throttling, a narrow PCIe link, a power cap)
verify_min_tflops_fraction = 0.5
# burn-in bar: most share of the seconds a GPU may spend thermally or power-brake throttled (NVML
# clock event reasons sw/hw thermal, hw slowdown, power brake; the software power cap is the card at
# its limit and does not count)
verify_burn_in_max_throttle_fraction = 0.02
# burn-in bar: least median SM clock under load as a share of the GPU's maximum SM clock (NVML);
# boost cards settle near their power limit below the maximum
verify_burn_in_min_clock_fraction = 0.75
# share of the host's memory the burn-in's memory stressor (stress-ng --vm) holds
verify_burn_in_memory_fraction = 0.5
# size of the burn-in's disk soak file on hardware_data_dir (stress-ng --hdd), MiB (at most 1 TiB)
verify_burn_in_disk_mib = 1024
# hosts with the same name here train together across machines with torchrun (c10d rendezvous on the
# group's first host; NCCL with GPUs, gloo without); none = alone
network_multinode_group = None
# the address the other hosts of the group reach this host at on the lab network (default: its
# inventory name)
network_address = None
# the network interface the group's traffic uses on this host (GLOO_SOCKET_IFNAME and
# NCCL_SOCKET_IFNAME, e.g. 'eth1'); default: the one the host's name resolves to
network_interface = None
# least all-reduce bus bandwidth between each pair of hosts of the group, Gbit/s (nccl-tests' busbw;
# set your fabric's figure, e.g. 80 for 100 GbE)
network_min_gbit = 0.5
# TCP port of the c10d rendezvous on the group's first host
network_rendezvous_port = 29400
# seconds the multi-node check may take before it is stopped and fails (a host that never joins the
# rendezvous; at most a day)
network_timeout_s = 180
# controller path of a file (mode 600) of USER:PASSWORD lines (chpasswd's format) for
# roles/notebooks' login checks: each lab member must get in, everyone else must be refused; None =
# those checks skip
verify_notebooks_logins = None
# where the controller reaches the hub (default: the host's address and notebooks_port; a
# container's bridge address)
verify_notebooks_url = None

# --- dlws.roles.cache (Package cache role: one apt-cacher-ng for a fleet, and the keys that point hosts at it.)
# apt-cacher-ng (or another apt proxy) for plain-HTTP repositories, e.g. 'http://10.0.0.5:3142':
# each .deb crosses the uplink once for the fleet; HTTPS repositories pass through (see
# roles/cache/README.md)
cache_apt_proxy = None
# a directory on the host shared by the fleet (NFS, or a bind mount into containers) used as pip's
# and uv's download cache; None = each host keeps its own
cache_pip_dir = None

# --- dlws.roles.base (Base role: apt sources with the stack's components, essential packages, CAs and proxies.)
# add the components the GPU stack needs to the host's own apt sources
base_apt_manage_sources = True
# replace the host's Debian/Ubuntu mirror with this http(s) URL (originals kept as *.dlws-orig); no
# credentials (use the host's /etc/apt/auth.conf.d)
base_apt_mirror = None
# seconds an apt index stays fresh before the deploy runs apt-get update again
base_apt_cache_s = 3600
# more apt packages for every host: Debian package names (NAME, NAME:ARCH, NAME=VERSION)
base_extra_packages = []
# kernel headers: auto = where the host runs its own kernel (not a container) the running kernel's,
# and where DKMS builds the NVIDIA module (Debian's driver, NVIDIA's repository) also the headers
# metapackage of its flavour (linux-headers-amd64, -cloud-amd64, -generic-hwe-24.04...) so every new
# kernel gets its module; yes = both on every host; no = none [one of: 'auto', 'yes', 'no']
base_kernel_headers = 'auto'
# controller paths of PEM CA certificates (or bundles) the hosts must trust, e.g. an intercepting
# proxy's CA
base_extra_ca_certs = []
# HTTP proxy for apt, pip and login shells: http(s)://[USER:PASSWORD@]HOST:PORT (credentials are
# kept in root-only files)
base_http_proxy = None
# HTTPS proxy for apt, pip and login shells: http(s)://[USER:PASSWORD@]HOST:PORT
base_https_proxy = None
# comma-separated hosts that bypass the proxy (no spaces)
base_no_proxy = None
# where extra CA certificates are installed on the host
base_ca_dir = '/usr/local/share/ca-certificates/dlws'
# seconds apt and dpkg wait for a lock another process holds (unattended-upgrades), then the deploy
# fails naming the lock and its holder (at most a day)
base_apt_lock_timeout_s = 120
# the lab's people: created if missing (an existing account keeps its home, shell and groups) and
# put in the GPU groups (video, render) and base_lab_group; never added to docker
# (containers_docker_users does that); root and system accounts are refused; one removed from this
# list is reported, never deleted
base_lab_users = []
# the lab's group: every lab user is in it, and it owns the shared datasets folders (storage_disks)
base_lab_group = 'lab'

# --- dlws.roles.storage (Storage role: the lab's data disks, formatted only when blank, mounted by UUID, shared.)
# data disks: each {'device': '/dev/disk/by-id/...' (or 'serial': '...'), 'mount': '/data', 'fs':
# 'ext4' | 'xfs', 'options': 'defaults', 'datasets': 'datasets', 'min_free_gib': 0,
# 'min_read_mib_s': 0, 'min_write_mib_s': 0}; a blank disk is formatted, one carrying the declared
# filesystem is mounted as it is, anything else is refused; never reformatted. Mounted by UUID with
# nofail
storage_disks = []

# --- dlws.roles.nvidia_driver (NVIDIA driver role: the planned branch and flavour, from the distro or NVIDIA's repository.)
# driver branch: auto = newest the GPU and source allow (long-term R580 where it fits); none = no
# driver; or a branch such as '580'
nvidia_driver_branch = 'auto'
# kernel modules: auto = open on Turing and newer from R560 (required on Blackwell), proprietary on
# Maxwell/Pascal/Volta [one of: 'auto', 'open', 'proprietary']
nvidia_driver_flavour = 'auto'
# distro (Ubuntu's signed prebuilt modules / Debian non-free) or cuda_repo (NVIDIA's repository);
# auto = distro where it has the planned branch [one of: 'auto', 'distro', 'cuda_repo']
nvidia_driver_source = 'auto'
# desktop = the full driver (X/Wayland libraries) with nvidia-drm modeset; headless = compute user
# space only (servers); auto = desktop where a display manager or graphical session is found [one
# of: 'auto', 'desktop', 'headless']
nvidia_driver_display = 'auto'
# replace an installed driver that does not satisfy the plan (else the deploy stops and says so)
nvidia_driver_replace = False
# reboot after a driver install when needed (never the controller, never a container); false =
# report that a reboot is pending
nvidia_driver_reboot = False
# enable nvidia-persistenced
nvidia_driver_persistenced = True
# automatic upgrades (unattended-upgrades, apt upgrade): within_branch = the branch is pinned (apt
# preferences) so no upgrade switches branches, updates within it come; hold = pinned and the driver
# packages held (apt-mark hold): nothing moves until the next deploy; unmanaged = no pin, no hold
# [one of: 'within_branch', 'hold', 'unmanaged']
nvidia_driver_updates = 'within_branch'

# --- dlws.roles.cuda (CUDA toolkit role: the planned toolkit from the distro or NVIDIA's repository, nvcc on PATH.)
# CUDA toolkit: auto = the newest the driver branch and GPU support from the source (none on hosts
# without a GPU); none; or a version such as '12.4'
cuda_version = 'auto'

# --- dlws.roles.cudnn (cuDNN and NCCL role: from NVIDIA's repository or the distribution, or left to the wheels.)
# cuDNN: auto = left to the framework wheels where they bring their own, else the source's; wheels;
# none; or a version such as '9'
cudnn_version = 'auto'
# NCCL for multi-GPU hosts: auto = installed where more than one GPU is declared [one of: 'auto',
# 'yes', 'no']
cudnn_nccl = 'auto'

# --- dlws.roles.python_env (Python environment role: a shared virtual environment, pip/uv set up for the host's network.)
# the shared virtual environment; lab users run its bin/ or build their own with --system-site-
# packages on top of it; a folder of its own (never /usr, /opt, /tmp...)
python_env_prefix = '/opt/dlws/venv'
# the Python of the environment: auto = the OS's python3 (Debian 12: 3.11, 13: 3.13, Ubuntu 22.04:
# 3.10, 24.04: 3.12); a version here must equal it
python_env_python = 'auto'
# uv (measured 8 s against pip's 36 s for tensorflow-cpu + torch) or pip [one of: 'uv', 'pip']
python_env_installer = 'uv'
# uv release installed into the environment
python_env_uv_version = '0.13.9'
# a PyPI mirror for the host (default: PyPI); may carry USER:PASSWORD@
python_env_index_url = None
# more package indexes
python_env_extra_index_urls = []
# a directory of wheels on the controller, uploaded and used as --find-links (air-gapped labs); must
# hold *.whl files
python_env_wheelhouse = None
# where the wheelhouse is uploaded on the host
python_env_wheelhouse_dir = '/opt/dlws/wheelhouse'
# the host's CA bundle that pip and uv trust (includes base_extra_ca_certs)
python_env_ca_bundle = '/etc/ssl/certs/ca-certificates.crt'
# put the environment's bin/ on login shells' PATH (/etc/profile.d/dlws.sh)
python_env_login_path = True
# more pip requirements for the environment (installed with the frameworks, in one resolver run):
# NAME, NAME==VERSION, NAME>=VERSION
python_env_extra_packages = []
# install only files whose sha256 a lock in locks/ pins (`bin/dlws lock` makes them); False = pins
# by version only
python_env_require_hashes = True
# where the host's hash locks are uploaded
python_env_lock_dir = '/opt/dlws/locks'

# --- dlws.roles.frameworks (Frameworks role: TensorFlow and PyTorch builds the plan chose, and the training check.)
# TensorFlow version: auto = newest for the host's Python and GPU (tensorflow-cpu where no GPU,
# tensorflow[and-cuda] where one is); none = skip; ngc = NVIDIA's NGC TensorFlow container the
# host's driver runs, instead of pip (GPU hosts with containers_engine = 'docker'; the way to
# TensorFlow on RTX 50xx)
frameworks_tensorflow = 'auto'
# PyTorch version: auto = newest whose CUDA build fits the GPU and driver (cpu build where no GPU);
# none = skip
frameworks_torch = 'auto'
# where the training check command is linked for every user
frameworks_train_check_path = '/usr/local/bin/dlws-train-check'
# where the burn-in command is linked for every user
frameworks_burn_in_path = '/usr/local/bin/dlws-burn-in'
# install a systemd timer that runs the host's checks daily (training check, short burn-in) and
# keeps the last results in /var/lib/dlws/daily for the next verify to collect; hosts with systemd
# only (skipped in containers)
frameworks_daily_check = False
# minutes of the daily check's burn-in (at most a day)
frameworks_daily_burn_in_minutes = 5

# --- dlws.roles.notebooks (Notebooks role: JupyterHub for the lab, over HTTPS, with the managed environment as a kernel.)
# run JupyterHub for base_lab_users (PAM logins, notebooks_group only), with the managed environment
# as a kernel
notebooks_enabled = False
# the hub's own virtual environment (JupyterHub, JupyterLab), hash-locked like python_env's
notebooks_prefix = '/opt/dlws/hub'
# JupyterHub release (PyPI)
notebooks_jupyterhub_version = '6.1.1'
# JupyterLab release (PyPI)
notebooks_jupyterlab_version = '4.6.6'
# ipykernel added to the managed environment (python_env_prefix) so it runs as a kernel
notebooks_ipykernel_version = '7.4.0'
# the only group whose members may log in; every base_lab_users member is put in it
notebooks_group = 'lab'
# the address the hub listens on (an IP address of the host; no zone id)
notebooks_address = '0.0.0.0'
# the hub's TCP port
notebooks_port = 8443
# serve plain HTTP instead of HTTPS: only behind a proxy that terminates TLS itself
notebooks_plain_http = False
# controller path of the hub's PEM certificate (chain); None = a self-signed one made on the host
# (its SHA-256 fingerprint is printed by the deploy)
notebooks_tls_cert = None
# controller path of the certificate's PEM private key (installed root-only, 0600)
notebooks_tls_key = None
# validity of a self-signed certificate, days
notebooks_tls_days = 825
# the hub's configuration and certificate
notebooks_config_dir = '/etc/dlws/hub'
# the hub's database and secrets (root-only, 0700)
notebooks_state_dir = '/var/lib/dlws/hub'

# --- dlws.roles.containers (Containers role: Docker and/or rootless Podman, daemon.json, the docker group, GPU access.)
# container engine: none = no engine; docker = Docker (the docker group is root-equivalent); podman
# = the distribution's Podman, rootless for every base_lab_users member (own subordinate uid/gid
# ranges, no root-equivalent group); both = Docker and rootless Podman. Where a GPU is declared on a
# machine of its own, NVIDIA's container toolkit too [one of: 'none', 'docker', 'podman', 'both']
containers_engine = 'none'
# how GPUs reach containers (GPU hosts): cdi = the CDI spec /etc/cdi/nvidia.yaml, kept current by
# nvidia-cdi-refresh (Podman always; Docker where its version has CDI, else Docker stays on the
# nvidia runtime with /dev/char links); legacy = Docker's nvidia runtime hook, with /dev/char links
# for every NVIDIA device node and the udev rule that keeps them (so a systemctl daemon-reload
# leaves running containers their GPUs) [one of: 'cdi', 'legacy']
containers_gpu_mode = 'cdi'
# subordinate uids and gids each lab user gets for rootless Podman (podman/both): one free range in
# /etc/subuid and /etc/subgid, never overlapping another; existing ranges are kept (65536 = a full
# 16-bit id space, as useradd gives)
containers_subid_count = 65536
# where Docker comes from: distro = the distribution's docker.io; docker_repo = Docker's repository
# (docker-ce, key fingerprint checked) [one of: 'distro', 'docker_repo']
containers_engine_source = 'distro'
# /etc/docker/daemon.json (the original kept as daemon.json.dlws-orig); on GPU hosts nvidia-ctk adds
# the nvidia runtime to it; only the settings in DAEMON_JSON, each with its domain
containers_daemon_json = {'log-driver': 'json-file', 'log-opts': {'max-size': '100m', 'max-file': '3'}}
# users put in the docker group; the group is root-equivalent (anyone in it can mount / into a
# container), and verify fails any other member
containers_docker_users = []
# NVIDIA container toolkit packages installed on GPU hosts (NVIDIA's install guide pins all four to
# one version)
containers_toolkit_version = '1.18.0-1'
# image verify runs with --gpus all to list the GPUs (nvidia-smi comes from the host through the
# toolkit)
containers_gpu_check_image = 'ubuntu:24.04'
# image verify runs rootless as each lab user (podman/both): it must hold sh and cat; fully
# qualified, as Podman resolves no short names without a registries.conf search list
containers_rootless_check_image = 'docker.io/library/ubuntu:24.04'
