"""Container, pod and ancestors of a GPU process, from what runtimes and Linux actually write."""

from __future__ import annotations

import os

import pytest

from agents.processes import ancestors_of, container_of, parse_cgroup

CID = "3f2a" * 16
POD = "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"


@pytest.mark.parametrize(("text", "want"), [
    (f"12:memory:/docker/{CID}\n11:cpu,cpuacct:/docker/{CID}\n", {"container.id": CID}),
    (f"0::/system.slice/docker-{CID}.scope\n", {"container.id": CID}),
    ("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
     f"{POD.replace('-', '_')}.slice/cri-containerd-{CID}.scope\n",
     {"container.id": CID, "k8s.pod.uid": POD}),
    (f"11:memory:/kubepods/burstable/pod{POD}/{CID}\n", {"container.id": CID, "k8s.pod.uid": POD}),
    ("0::/user.slice/user-1000.slice/session-2.scope\n", {}),  # not in a container
])
def test_cgroup_layouts(text: str, want: dict) -> None:
    assert parse_cgroup(text) == want


def test_a_process_is_read_from_proc_and_a_gone_one_gives_nothing(tmp_path) -> None:
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "cgroup").write_text(f"0::/system.slice/docker-{CID}.scope\n")
    assert container_of(4242, str(tmp_path)) == (("container.id", CID),)
    assert container_of(4243, str(tmp_path)) == ()


def test_ancestors_follow_parents_up_to_init_and_stop_where_one_is_gone(tmp_path) -> None:
    # vLLM V1: API server 100 → "VLLM::EngineCore" 200 → "VLLM::Worker" 300 (holds the GPU);
    # a command name may hold spaces and parentheses.
    for pid, comm, ppid in ((100, "python3", 1), (200, "VLLM::EngineCore", 100),
                            (300, "VLLM::Worker (x) y", 200), (400, "orphan", 999)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} 0 0 -1\n")
    assert ancestors_of(300, str(tmp_path)) == [200, 100]
    assert ancestors_of(100, str(tmp_path)) == []
    assert ancestors_of(400, str(tmp_path)) == [999]  # its parent's stat is gone
    assert ancestors_of(12345, str(tmp_path)) == []


def test_this_process_has_its_real_parent_first() -> None:
    assert ancestors_of(os.getpid())[:1] == ([os.getppid()] if os.getppid() > 1 else [])
