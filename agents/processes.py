"""What the agent tells of a GPU process beyond NVML's PID: its container, pod and ancestors.

NVML reports host PIDs; on a shared node a FinOps user wants the workload behind them. The
container runtime leaves its 64-hex container id in the process's cgroup path, and the
kubelet the pod's UID (``pod<uid>``, with ``_`` for ``-`` under the systemd driver), in both
cgroup v1 and v2 layouts. Processes outside any container get nothing (not a guess).

The process holding a GPU is often not the one that serves: vLLM's V1 API server starts
``VLLM::EngineCore``, which starts ``VLLM::Worker``, and only the worker holds GPU memory,
while the request spans name the API server's PID. The worker's ancestors (from each
``/proc/<pid>/stat``'s parent field) let analytics place those requests.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

_CONTAINER = re.compile(r"([0-9a-f]{64})")
_POD = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


def parse_cgroup(text: str) -> dict[str, str]:
    """OTel resource attributes (``container.id``, ``k8s.pod.uid``) found in a cgroup file."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        if m := _CONTAINER.findall(path):
            out["container.id"] = m[-1]
        if m := _POD.search(path):
            out["k8s.pod.uid"] = m.group(1).replace("_", "-")
    return out


@functools.lru_cache(maxsize=4096)
def container_of(pid: int, proc: str = "/proc") -> tuple[tuple[str, str], ...]:
    """The container and pod of ``pid`` (cached: a process never changes container)."""
    try:
        text = (Path(proc) / str(pid) / "cgroup").read_text()
    except OSError:  # gone, or another PID namespace
        return ()
    return tuple(sorted(parse_cgroup(text).items()))


def ancestors_of(pid: int, proc: str = "/proc", depth: int = 16) -> list[int]:
    """``pid``'s parent, grandparent, … up to (not including) init; fewer where one is gone.

    Read afresh each time (not cached): a PID can be reused by an unrelated process."""
    out: list[int] = []
    while len(out) < depth:
        try:
            stat = (Path(proc) / str(pid) / "stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])  # after "(comm)": state, ppid
        except (OSError, ValueError, IndexError):
            break
        if pid <= 1:
            break
        out.append(pid)
    return out
