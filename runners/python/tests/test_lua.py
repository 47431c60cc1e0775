"""The packaged Lua scripts are byte-identical copies of src/store/lua (PRODUCER.md §3; the
cancel script of issue 20)."""

from __future__ import annotations

from importlib import resources

import pytest

from helpers import REPO_ROOT

SCRIPTS = [
    "enqueue-3.lua",
    "enqueue-rate-limited-3.lua",
    "enqueue-debounced-2.lua",
    "enqueue-batch-n.lua",
    "enqueue-fields-1.lua",
    "job-cancel-2.lua",
]


@pytest.mark.parametrize("name", SCRIPTS)
def test_lua_copy_is_identical(name: str) -> None:
    source = REPO_ROOT / "src" / "store" / "lua" / name
    if not source.exists():
        pytest.skip("not inside the rrqkit repository")
    packaged = resources.files("rrqkit").joinpath("lua", name).read_bytes()
    assert packaged == source.read_bytes()


def test_no_extra_scripts() -> None:
    source_dir = REPO_ROOT / "src" / "store" / "lua"
    if not source_dir.exists():
        pytest.skip("not inside the rrqkit repository")
    packaged = {p.name for p in resources.files("rrqkit").joinpath("lua").iterdir()}
    assert packaged == set(SCRIPTS)
    assert {p.name for p in source_dir.glob("enqueue*.lua")} <= packaged
