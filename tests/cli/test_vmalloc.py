# SPDX-License-Identifier: LGPL-2.1-or-later
"""``kcoretool vmalloc ...`` and ``kcoretool whatis`` on synthetic kernels."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from kcoretool.cli.vmalloc import vmalloc, whatis
from kcoretool.model import from_program
from tests.synth.layouts import PAGE, VMALLOC_START, build, standard_scene

V = VMALLOC_START


class _Obj:
    """The CLI's global options, holding a synthetic kernel."""

    core_path = "/proc/kcore"
    vmlinux = None
    json = False
    debug = False
    warned = False

    def __init__(self, prog):
        from kcoretool.api import Kernel

        self._kernel = Kernel(prog)

    def kernel(self):
        return self._kernel


def run(args, layout="6.12", as_json=False, scene=None):
    k = build(layout, scene or standard_scene(layout))
    o = _Obj(k.prog)
    o.json = as_json

    @click.group()
    @click.pass_context
    def root(ctx):
        ctx.obj = o

    root.add_command(vmalloc)
    root.add_command(whatis)
    r = CliRunner().invoke(root, args, catch_exceptions=False)
    return r


@pytest.mark.parametrize("layout", ["5.3", "6.1", "6.12", "latest"])
def test_list_table(layout: str) -> None:
    r = run(["vmalloc", "list"], layout)
    assert r.exit_code == 0
    head = r.output.splitlines()[0].split()
    assert head == ["START", "END", "SIZE", "KIND", "PAGES", "CALLER", "FLAGS"]
    assert "kvmalloc_node+0x4b/0x200" in r.output and "vmap_block" in r.output


def test_list_filters_and_sort() -> None:
    r = run(["vmalloc", "list", "--kind", "exec", "--sort", "size", "--reverse"], as_json=True)
    rows = json.loads(r.output)
    assert [x["kind"] for x in rows] == ["exec", "exec"]
    assert rows[0]["size"] > rows[1]["size"]
    r = run(["vmalloc", "list", "--format", "json", "--caller", "kv*", "--min-size", "1M"])
    assert [x["caller_symbol"] for x in json.loads(r.output)] == ["kvmalloc_node+0x4b/0x200"]
    r = run(["vmalloc", "list", "--format", "json", "--range", f"{V + 0x10000:#x}-{V + 0x20001:#x}"])
    assert [x["start"] for x in json.loads(r.output)] == [V + 0x10000, V + 0x20000]
    r = run(["vmalloc", "list", "--format", "json", "--kind", "lazy"])
    assert [x["kind"] for x in json.loads(r.output)] == ["lazy"]


def test_list_bad_kind() -> None:
    r = CliRunner().invoke(vmalloc, ["list", "--kind", "nope"], obj=_Obj(None))
    assert r.exit_code != 0 and "unknown kind" in r.output


def test_list_vmallocinfo() -> None:
    r = run(["vmalloc", "list", "--format", "vmallocinfo"])
    assert r.output.splitlines()[-1].endswith("unpurged vm_area")
    r = run(["vmalloc", "list", "--format", "vmallocinfo", "--kind", "exec"])
    assert r.exit_code != 0


def test_one_area_schema() -> None:
    """list --json rows, show --json and Area.to_dict are one schema."""
    m = from_program(build("6.12", standard_scene("6.12")).prog)
    listed = json.loads(run(["vmalloc", "list", "--lazy"], as_json=True).output)
    # ... plus who owns each exec area (issue 12; none in this scene)
    want = [dict(a.to_dict(m.page_size), owner=None) for a in sorted(m.areas + m.lazy + m.pooled)]
    assert listed == want
    shown = json.loads(run(["vmalloc", "show", hex(m.areas[0].start)], as_json=True).output)

    # show's area keys are list's, owner too (issue 23)
    assert {k: v for k, v in shown.items() if k in want[0]} == want[0]
    assert set(shown) - set(want[0]) == {"offset", "vm", "block"}


def test_show_block_piece() -> None:
    r = run(["vmalloc", "show", f"{V + 0xC06010:#x}"])
    assert "vmap_block" in r.output and "piece" in r.output
    d = json.loads(run(["vmalloc", "show", f"{V + 0x200010:#x}"], as_json=True).output)
    assert d["vm"]["page_order"] == 9 and d["offset"] == 0x10


def test_show_not_found() -> None:
    from kcoretool.errors import AddressError

    with pytest.raises(AddressError):
        run(["vmalloc", "show", "0xffffc9ffff000000"])


def test_blocks_free_stats() -> None:
    r = run(["vmalloc", "blocks"])
    assert "0+4 6+1" in r.output
    d = json.loads(run(["vmalloc", "free", "--fits", "1M", "--align", "2M"], as_json=True).output)
    assert d["fits"]["candidates"][0]["address"] % (2 << 20) == 0
    assert d["largest"]["size"] >= d["fits"]["size"]
    r = run(["vmalloc", "stats"])
    assert "lazy_max_pages 16384" in r.output
    d = json.loads(run(["vmalloc", "stats"], as_json=True).output)
    assert d["by_kind"]["vmap_block"]["count"] == 1


def test_whatis() -> None:
    d = json.loads(run(["whatis", f"{V + 0xC06010:#x}"], as_json=True).output)
    assert [w["kind"] for w in d["what"]][:2] == ["vmalloc", "vmap_block piece"]
    r = run(["whatis", f"{V + 0x4800:#x}"])
    assert "guard page" in r.output
    r = run(["whatis", f"{V + 0xC05010:#x}"])
    assert "vmap_block unused page" in r.output


def test_main_cli_errors_are_one_line(tmp_path) -> None:
    from kcoretool.cli import cli

    r = CliRunner().invoke(cli, ["-c", str(tmp_path / "nope"), "vmalloc", "list"])
    assert r.exit_code != 0
    from kcoretool.errors import AccessError

    assert isinstance(r.exception, AccessError) and "\n" not in str(r.exception)
    r = CliRunner().invoke(cli, ["vmalloc", "--help"])
    for c in ("list", "show", "blocks", "free", "stats"):
        assert c in r.output


def test_big_list_uses_streamed_table() -> None:
    from tests.synth.layouts import VM_ALLOC, AreaSpec, Scene

    sc = Scene(areas=[AreaSpec(V + i * 0x3000, 2 * PAGE, VM_ALLOC, "f") for i in range(6000)])
    r = run(["vmalloc", "list"], scene=sc)
    lines = r.output.splitlines()
    assert len(lines) == 6003 and lines[-1].startswith("6000 area(s)")
