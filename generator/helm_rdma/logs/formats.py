"""The log lines `diagnose` recognises, each with the source that prints it, and what each finding means and fixes.

Every pattern is taken from the code that writes the line (NVIDIA/nccl, ROCm/rccl, vllm-project/vllm, pytorch/pytorch,
huggingface_hub, transformers, ray-project/ray) or from the chart's own preflight; tests/fixtures/diagnose/README.md
cites the file (and an issue thread with a real log) for each. Patterns use ``search``: the lines may carry prefixes
(kubectl's ``--prefix``, vLLM's ``(Worker pid=..)``, torchrun's ``[default0]:``), and NCCL lines of several processes
are sometimes glued together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from helm_rdma.contract import PREFLIGHT_RESULT_PREFIX

# --- NCCL (NVIDIA/nccl; RCCL keeps the same messages) -----------------------------------------------------------
# src/init.cc VERSION_STRING "NCCL version 2.21.5+cuda12.4" (bare, or after the INFO prefix since 2.26);
# ROCm/rccl src/init.cc "RCCL version : 2.26.6-HEAD:f224e2c"; torch's "NCCL version: 2.21.5" fits too.
NCCL_VERSION = re.compile(r"\b([NR]CCL) version :? ?(\d+\.\d+\.\d+)(\S*)")
# vllm/distributed/device_communicators/pynccl.py: "vLLM is using nccl==2.21.5" (the library vLLM loaded).
PYNCCL_VERSION = re.compile(r"vLLM is using nccl==(\d+\.\d+\.\d+)(\S*)")
# src/init.cc: "[ncclCommInitRank ]comm 0x.. rank 3 nranks 16 cudaDev 3 nvmlDev 3 busId .. commId 0x.. - Init START"
# and "... - Init COMPLETE" (2.28+ puts "[Rank 3] ncclCommInitRank" before START; split communicators log no commId).
NCCL_INIT = re.compile(r"\bcomm (0x[0-9a-fA-F]+) rank (\d+) nranks (\d+) .*?commId (0x[0-9a-fA-F]+) "
                       r"- Init (START|COMPLETE)")
# src/bootstrap.cc: "Bootstrap : Using eth0:10.0.0.5<0>" (to 2.23), "Bootstrap: Using eth0:10.0.0.5<0>" (2.26 on);
# logged under NCCL_DEBUG_SUBSYS INIT up to 2.22, BOOTSTRAP from 2.23 (in NCCL's default INIT,BOOTSTRAP,ENV).
# "Bootstrap: Using mlx5_0:1" names an OOB network device (NCCL_OOB_NET_ENABLE), not an interface: no "<port>".
BOOTSTRAP = re.compile(r"Bootstrap ?: Using ?([^\s:]+):(\S+)")
# src/transport/net_ib.cc: "NET/IB : Using [0]mlx5_0:1/RoCE [1]... ; OOB eth0:10.0.0.5<0>" (subsystems INIT|NET: the
# interface NCCL's IB transport talks out of band on, chosen as the bootstrap's is, by NCCL_SOCKET_IFNAME).
IB_OOB = re.compile(r"NET/IB : Using .*; OOB ([^\s:]+):(\S+)")
# src/transport/net_ib.cc (net_ib/init.cc since 2.28): "NET/IB : No device found."
IB_NO_DEVICE = "NET/IB : No device found"
# src/init.cc: "Using network IB" / "Using network Socket" (or a plugin's name, such as IBext_v8).
USING_NETWORK = re.compile(r"\bUsing network (\S+)")
# src/transport/net.cc: "Channel 00/0 : 7[7] -> 15[7] [send] via NET/IB/8/GDRDMA" ("via NET/Socket/0" on TCP).
CHANNEL = re.compile(r"\bvia NET/([A-Za-z][\w.]*)/\d+(?:\(\d+\))?(/GDRDMA)?")
# src/debug.cc: "host:pid:tid [dev] file.cc:123 NCCL WARN message".
NCCL_WARN = re.compile(r"\bNCCL WARN (.*)")

# --- vLLM (vllm-project/vllm) ------------------------------------------------------------------------------------
# vllm/entrypoints/openai/api_server.py: "vLLM API server version 0.11.0";
# vllm/entrypoints/cli/serve.py (headless workers): "Launching vLLM (v0.11.0) headless multiproc executor, ...".
VLLM_VERSION = re.compile(r"vLLM API server version (\S+)|Launching vLLM \(v(\S+)\) headless")

# --- Ray (ray-project/ray, python/ray/_private/utils.py check_version_info) ---------------------------------------
# "Version mismatch: The cluster was started with:\n    Ray: 2.44.1\n    Python: ...\nThis process on node .. was
# started with:\n    Ray: 2.9.3\n ..."
RAY_MISMATCH = "Version mismatch: The cluster was started with"
RAY_LINE = re.compile(r"^\s*Ray: (\S+)")

# --- helm-rdma's preflight (charts/vllm-rdma/files/nccl_allreduce.py) --------------------------------------------
# The chart's preflight (files/nccl_allreduce.py): one line PREFLIGHT_RESULT_PREFIX + {json}.
PREFLIGHT = re.compile(re.escape(PREFLIGHT_RESULT_PREFIX) + r"(\{.*)")

# Interfaces that are never the node's network between pods: loopback and container bridges.
LOOPBACK = "lo"
BRIDGE = re.compile(r"^(docker\d*|cni\d*|virbr\d*|br-\S*|cbr\d*|podman\d*|lxcbr\d*)$")


class LineRule(NamedTuple):
    """A line that is a finding by itself; ``needles`` are literal parts of it, checked before the pattern."""

    check: str
    severity: str
    needles: tuple[str, ...]
    pattern: re.Pattern[str]
    cause: str
    fix: str


# First match wins: the more specific rule of a family comes first.
LINE_RULES = (
    LineRule("rdma-device", "error", ("No device found",), re.compile(re.escape(IB_NO_DEVICE)),
             "NCCL found no usable RDMA device in the pod, so it falls back to TCP sockets",
             "give the pod the RDMA devices: rdma.privileged=true in hostNetwork mode (a hostPath "
             "/dev/infiniband alone cannot be opened unprivileged) or a device plugin that grants them "
             "(rdma.mode=sriov), and use an image with libibverbs1, ibverbs-providers and librdmacm1"),
    # pytorch/pytorch torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp
    LineRule("nccl-timeout", "error", ("Watchdog caught",), re.compile(r"Watchdog caught collective operation timeout"),
             "a collective ran past torch's NCCL timeout: a rank stopped answering (hung, dead or unreachable)",
             "find the rank that stalled first (the other findings); check the fabric with `helm rdma verify RELEASE "
             "--nccl`"),
    # pytorch/pytorch torch/csrc/distributed/c10d/socket.cpp ("The client socket has timed out after 600000ms while
    # trying to connect to (10.0.0.5, 29500)") and the DistNetworkError / DistStoreError it surfaces as.
    LineRule("rendezvous-timeout", "error",
             ("DistNetworkError", "DistStoreError", "timed out after", "waiting for clients"),
             re.compile(r"DistNetworkError|DistStoreError|The client socket has timed out after|"
                        r"Timed out after \d+ seconds waiting for clients"),
             "torch.distributed could not reach the rendezvous on the leader (--master-addr, "
             "distributed.masterPort)",
             "check that the leader pod runs and resolves from the workers, and that distributed.masterPort is open "
             "between the nodes (under hostNetwork: the OCI security list or NSG of the node subnet)"),
    # vllm/v1/engine/core_client.py and vllm/v1/engine/core.py
    LineRule("vllm-startup-timeout", "error", ("Timed out waiting for engines", "Did not receive response"),
             re.compile(r"Timed out waiting for engines to send initial message|"
                        r"Did not receive response from front-end process within"),
             "vLLM's engine did not come up in time: a node never joined, or a worker died while loading",
             "read the workers' findings; a slow first load of a large model may need a longer "
             "VLLM_ENGINE_READY_TIMEOUT_S (vllm.extraEnv)"),
    # PyTorch c10/cuda/CUDACachingAllocator.cpp ("CUDA out of memory. Tried to allocate ..."; HIP on ROCm)
    LineRule("gpu-oom", "error", ("out of memory",),
             re.compile(r"OutOfMemoryError: (?:CUDA|HIP) out of memory|(?:CUDA|HIP) out of memory\. Tried to allocate"),
             "a GPU ran out of memory while vLLM loaded the model or sized its KV cache",
             "lower vllm.gpuMemoryUtilization or vllm.maxModelLen, or add nodes (`helm rdma plan MODEL --preset P` "
             "sizes the group)"),
    # vllm/v1/executor/multiproc_executor.py, vllm/v1/engine/utils.py, vllm/v1/engine/core.py
    LineRule("worker-failed", "error",
             ("WorkerProc", "Worker proc", "Worker failed", "Engine core initialization", "EngineCore failed"),
             re.compile(r"WorkerProc initialization failed|WorkerProc failed to start|"
                        r"Worker proc \S+ died unexpectedly|Worker failed with error|"
                        r"Engine core initialization failed|EngineCore failed to start"),
             "a vLLM worker process failed or died during start-up",
             "its root cause is logged just above it in the same log (and is often another finding here); with a "
             "LeaderWorkerSet the whole group restarts"),
    # huggingface_hub src/huggingface_hub/utils/_http.py and errors.py; transformers utils/hub.py
    LineRule("model-gated", "error", ("GatedRepo", "gated repo"),
             re.compile(r"GatedRepoError|Cannot access gated repo|You are trying to access a gated repo"),
             "the model is gated and the pod has no token, or the token's account has not been granted access",
             "accept the model's licence on huggingface.co with the token's account, store the token in a Secret and "
             "set model.hfTokenSecret.name"),
    LineRule("model-not-found", "error", ("RepositoryNotFound", "Repository Not Found", "valid model identifier"),
             re.compile(r"RepositoryNotFoundError|Repository Not Found for url|"
                        r"is not a local folder and is not a valid model identifier"),
             "the Hugging Face Hub has no such model repository (or a private or gated one, asked without a token)",
             "check model.name (the repository id); for a private or gated model set model.hfTokenSecret.name"),
    LineRule("hub-auth", "error", ("401 Client Error", "401 Unauthorized", "Invalid credentials"),
             re.compile(r"\b401 Client Error|Client error '401 Unauthorized'|"
                        r"Invalid credentials in Authorization header"),
             "the Hugging Face Hub refused the request (401)",
             "check the token in the Secret named by model.hfTokenSecret.name (HF_TOKEN)"),
)



def _literals(pieces: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(piece) for piece in pieces))


# A line holding none of a rule's needles matches no rule; one holding none of TRIGGER's is skipped unparsed.
ANY_RULE = _literals(needle for rule in LINE_RULES for needle in rule.needles)
TRIGGER = _literals((
    "NCCL", "RCCL", "Bootstrap", "NET/", "Using network", "nccl==", "vLLM API server version", "Launching vLLM",
    RAY_MISMATCH, PREFLIGHT_RESULT_PREFIX, *(n for rule in LINE_RULES for n in rule.needles)))

FIXES = {
    "transport-socket": "RDMA is expected: see rdma-device if it is reported; otherwise check that no setting turns "
                        "IB off (NCCL_IB_DISABLE=1 or NCCL_NET=Socket in nccl.settings or vllm.extraEnv), that "
                        "NCCL_IB_HCA names the node's RDMA NICs (`rdma link` on a node), and that the image has "
                        "libibverbs1, ibverbs-providers and librdmacm1",
    "no-gdrdma": "load the GPU peer-memory module on the nodes (nvidia-peermem, or DMA-BUF with a recent driver) and "
                 "do not lower NCCL_NET_GDR_LEVEL; `helm rdma verify RELEASE --nccl` shows the bandwidth it costs",
    "bootstrap-interface": "set network.interface to the node's front-end interface (eth0 on OKE): the chart passes "
                           "it as NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME",
    **dict.fromkeys(("nccl-version", "vllm-version"), "run one image on every pod of the group: pin image.tag (or a "
                    "digest) and recreate the pods that run another"),
    "ray-version": "Ray refuses mixed versions: run one image, with Ray, on every pod (pin image.tag)",
    "init-incomplete": "read those pods' other findings (bootstrap interface, transport, NCCL WARN lines); common "
                       "causes are a wrong NCCL_SOCKET_IFNAME, a port blocked between nodes, or a pod that restarted",
    "init-pending": "the group is still starting or hangs in NCCL's bootstrap: check bootstrap-interface and that "
                    "the nodes reach each other on the front-end network",
    "init-unseen": "nothing, if those ranks' pods were left out on purpose; otherwise add their logs (or set "
                   "nccl.debug=INFO where it is off)",
    "nccl-warn": "read the warning; NCCL names the peer, device or setting at fault",
    "preflight-bandwidth": "fix the transport findings first; `helm rdma verify RELEASE --nccl` measures again",
    "preflight-unreadable": "compare the chart version with helm-rdma's; the preflight Job's log holds the raw line",
    "log-unavailable": "`kubectl describe pod POD` tells why the container has not started",
    "nccl-silent": "set nccl.debug=INFO: with nccl.debugSubsys INIT,NET (the chart's default) NCCL logs its "
                   "transport and ranks; add BOOTSTRAP for its bootstrap interface on NCCL 2.23 and later",
    "ok": "nothing to do",
}
