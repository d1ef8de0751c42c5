"""Container and pod of a GPU process, from the cgroup layouts runtimes actually write."""

from __future__ import annotations

import pytest

from agents.containers import container_of, parse_cgroup

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
