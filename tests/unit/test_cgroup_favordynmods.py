"""When the node asks the kernel for ``favordynmods``: only where it exists and is off, in the form of its hierarchy."""

from __future__ import annotations

from oar_celery.node.cgroup import favordynmods_step

FEATURES = "nsdelegate\nfavordynmods\nmemory_localevents\n"
V1_MOUNTS = (
    "proc /proc proc rw,nosuid 0 0\n"
    "cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0\n"
    "cgroup /sys/fs/cgroup/freezer cgroup rw,relatime,freezer 0 0\n"
)
V2_MOUNTS = "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nsdelegate 0 0\n"


def test_a_kernel_without_the_option_is_left_alone() -> None:
    assert favordynmods_step("/sys/fs/cgroup", "nsdelegate\n", V2_MOUNTS) is None


def test_the_unified_hierarchy_is_remounted_with_the_option() -> None:
    assert favordynmods_step("/sys/fs/cgroup", FEATURES, V2_MOUNTS) == [
        "mount", "-o", "remount,favordynmods", "/sys/fs/cgroup"]


def test_v1_gets_a_named_hierarchy_mounted_with_the_option() -> None:
    step = favordynmods_step("/sys/fs/cgroup", FEATURES, V1_MOUNTS)
    assert step is not None and step[:3] == ["mount", "-t", "cgroup"]
    assert step[4].split(",") == ["none", "name=oar-favordynmods", "favordynmods"]
    assert step[-1] == "/run/oar-favordynmods"


def test_nothing_is_done_when_a_hierarchy_already_has_it() -> None:
    on_v2 = V2_MOUNTS.replace("nsdelegate", "nsdelegate,favordynmods")
    on_v1 = V1_MOUNTS + "cgroup /run/x cgroup rw,relatime,favordynmods,name=other 0 0\n"
    assert favordynmods_step("/sys/fs/cgroup", FEATURES, on_v2) is None
    assert favordynmods_step("/sys/fs/cgroup", FEATURES, on_v1) is None
