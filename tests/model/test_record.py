"""Records declared once (model/record.py): each record's table names every
one of its fields once, and its JSON, repr and CLI columns come from it."""

import dataclasses

import pytest

from kcoretool.model.exec import ExecRegion
from kcoretool.model.record import Column, Field, Record
from kcoretool.model.task import Mm, Task, Vma, VmaLock


@pytest.mark.parametrize("cls", [Task, Mm, Vma, VmaLock, ExecRegion])
def test_every_field_declared_once(cls):
    names = [f.name for f in cls.FIELDS]
    assert len(names) == len(set(names))
    stored = [f.name for f in dataclasses.fields(cls)]
    assert set(stored) <= set(names), set(stored) - set(names)
    for f in cls.FIELDS:  # the rest are properties
        assert f.name in stored or isinstance(getattr(cls, f.name), property), f.name
    positions = [f.column.position for f in cls.FIELDS if f.column is not None and not f.column.view]
    assert positions == sorted(set(positions), key=positions.index) and len(set(positions)) == len(positions)


@dataclasses.dataclass(repr=False)
class _Thing(Record):
    FIELDS = (
        Field("address", address=True, column=Column(1, "ADDR", "hex")),
        Field("name", column=Column(0, "NAME")),
        Field("size", json="bytes", column=Column(2, "SIZE", "bytes", "right", view="big")),
        Field("secret", json=None),
        Field("extra", nested="spread"),
    )

    address: int
    name: str
    secret: int = 0
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def size(self) -> int:
        return 4096


def test_a_record_from_its_table():
    t = _Thing(0xFFFF888000001000, "x", 7, {"more": [1]})
    assert t.to_dict() == {"address": 0xFFFF888000001000, "name": "x", "bytes": 4096, "more": [1]}
    assert list(t.to_dict()) == ["address", "name", "bytes", "more"]
    assert t.to_dict(derived=False) == {"address": 0xFFFF888000001000, "name": "x", "more": [1]}
    assert repr(t) == "_Thing(address=0xffff888000001000, name='x', secret=7, extra={'more': [1]})"
    assert [(n, c.header) for n, c in _Thing.columns()] == [("name", "NAME"), ("address", "ADDR")]
    assert [n for n, _ in _Thing.columns("big")] == ["name", "address", "size"]


def test_task_json_keeps_its_keys():
    """The keys task list --json has always printed: the mm's stored fields only
    (task vmas --json prints the mm with rss_pages)."""
    mm = Mm(0x1000, 0x2000, 3, 10, 0, 1, 2, 3, 0x400000, 0x401000, 0x7FFC0000, {"file": 1, "anon": 2,
                                                                             "swapents": 0, "shmem": 0}, None)
    t = Task(0xFFFF888000002000, 5, 5, "sh", "S", 0, mm, 1, 1)
    assert list(t.to_dict()) == ["address", "pid", "tgid", "comm", "state", "flags", "mm", "parent_pid",
                                 "nr_threads", "kthread"]
    assert "rss_pages" not in t.to_dict()["mm"] and mm.to_dict()["rss_pages"] == 3
    assert repr(mm).startswith("Mm(address=0x1000, pgd=0x2000, map_count=3,")
