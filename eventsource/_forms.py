"""The parser's fast path: the block forms it takes.

For each shape of block, the regex that matches a run of such blocks and the
builders of their events (see "The fast path" in ``_parser``'s Strategy).
Moved out of ``_parser`` as is, to keep that module under its size cap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from itertools import permutations
from operator import itemgetter
from typing import Any, NamedTuple

from ._event import ServerSentEvent

__all__ = ["FORMS", "PLAIN", "Form", "shape_key"]

_new = tuple.__new__
_Event = ServerSentEvent

_Shape = tuple[str, ...]
_Builder = Callable[[Iterable[Any], str], list[ServerSentEvent]]


def _build_d(rows: Iterable[Any], lid: str) -> list[ServerSentEvent]:
    return [_new(_Event, ("message", d, lid, None)) for d in rows]


def _build_e(rows: Iterable[Any], lid: str) -> list[ServerSentEvent]:
    return [_new(_Event, (t or "message", d, lid, None)) for t, d in rows]


def _build_i(rows: Iterable[Any], lid: str) -> list[ServerSentEvent]:
    return [_new(_Event, ("message", d, i, None)) for i, d in rows]


def _build_ei(rows: Iterable[Any], lid: str) -> list[ServerSentEvent]:
    return [_new(_Event, (t or "message", d, i, None)) for t, i, d in rows]


_CONT = "\ndata: "  # what joins the lines of a multi-line data group


# The builders of the extended forms: their data group is the data lines with
# every "\ndata: " but the first's prefix still in (see form_table).
def _build_md(rows: Iterable[Any], lid: str) -> list[ServerSentEvent]:
    return [_new(_Event, ("message", d.replace(_CONT, "\n"), lid, None)) for d in rows]


def _build_me(rows: Iterable[Any], lid: str) -> list[ServerSentEvent]:
    return [_new(_Event, (t or "message", d.replace(_CONT, "\n"), lid, None)) for t, d in rows]


def _build_mi(rows: Iterable[Any], lid: str) -> list[ServerSentEvent]:
    return [_new(_Event, ("message", d.replace(_CONT, "\n"), i, None)) for i, d in rows]


def _build_mei(rows: Iterable[Any], lid: str) -> list[ServerSentEvent]:
    return [_new(_Event, (t or "message", d.replace(_CONT, "\n"), i, None)) for t, i, d in rows]


_One = Callable[["re.Match[str]", str], ServerSentEvent]


def _one_builder(t: int, i: int, d: int, multi: bool) -> _One:
    """Build the one event of a block from its match.

    t, i, d are the groups of event, id (0: none) and data.
    """
    if multi:
        if t and i:
            return lambda m, lid: _new(
                _Event, (m[t] or "message", m[d].replace(_CONT, "\n"), m[i], None)
            )
        if t:
            return lambda m, lid: _new(
                _Event, (m[t] or "message", m[d].replace(_CONT, "\n"), lid, None)
            )
        if i:
            return lambda m, lid: _new(_Event, ("message", m[d].replace(_CONT, "\n"), m[i], None))
        return lambda m, lid: _new(_Event, ("message", m[d].replace(_CONT, "\n"), lid, None))
    if t and i:
        return lambda m, lid: _new(_Event, (m[t] or "message", m[d], m[i], None))
    if t:
        return lambda m, lid: _new(_Event, (m[t] or "message", m[d], lid, None))
    if i:
        return lambda m, lid: _new(_Event, ("message", m[d], m[i], None))
    return lambda m, lid: _new(_Event, ("message", m[d], lid, None))


class Form(NamedTuple):
    """How the fast path parses blocks of one shape."""

    pattern: re.Pattern[str]  # one block; groups are the field values
    lines: int  # newlines per block, blank line included, minus those in groups
    reorder: itemgetter[Any] | None  # puts groups in (event, id, data) order
    build: _Builder
    has_id: bool
    extra: bool  # groups may hold newlines: leading comments, several data lines
    one: _One  # the event of a single block, from its match


# The shape key of a block: its field names, then the number of leading
# comment lines and whether a data field spans several consecutive lines.
_Key = tuple[_Shape, int, bool]


def form_table() -> dict[_Key, Form]:
    r"""The block shapes the fast path takes.

    Event, id and data fields, each at most once, data always, in any order.
    Extended forms also take comment lines before them and several consecutive
    ``data: `` lines (all but the first with exactly one space after the colon,
    so that removing every "\ndata: " from the group leaves the data: a value
    holds no newline).
    """
    table = {}
    for extra, build, mbuild in (
        ((), _build_d, _build_md),
        (("event",), _build_e, _build_me),
        (("id",), _build_i, _build_mi),
        (("event", "id"), _build_ei, _build_mei),
    ):
        for shape in permutations((*extra, "data")):
            order = [shape.index(name) for name in ("event", "id", "data") if name in shape]
            for comments, multi in ((False, False), (False, True), (True, False), (True, True)):
                fields = "".join(
                    r"data:\x20?([^\n]*(?:\ndata:\x20[^\n]*)*)\n"
                    if name == "data" and multi
                    else rf"{name}:\x20?([^\n]*)\n"
                    for name in shape
                )
                prefix = r"((?::[^\n]*\n)+)" if comments else ""
                pattern = re.compile("^" + prefix + fields + "\n", re.MULTILINE)
                groups = [i + comments for i in order]
                reorder = None if groups == list(range(len(shape))) else itemgetter(*groups)
                index = {name: i + 1 + comments for i, name in enumerate(shape)}
                table[(shape, int(comments), multi)] = Form(
                    pattern,
                    len(shape) + 1,
                    reorder,
                    mbuild if multi else build,
                    "id" in shape,
                    comments or multi,
                    _one_builder(index.get("event", 0), index.get("id", 0), index["data"], multi),
                )
    return table


FORMS = form_table()
PLAIN = FORMS[(("data",), 0, False)]


def shape_key(block: str) -> _Key:
    """The shape key of one block (no blank line in it)."""
    names = [line.partition(":")[0] for line in block.split("\n")]
    comments = 0
    while comments < len(names) and not names[comments]:
        comments += 1
    shape: list[str] = []
    multi = False
    for name in names[comments:]:
        if shape and name == "data" == shape[-1]:
            multi = True
        else:
            shape.append(name)
    return tuple(shape), min(comments, 1), multi
