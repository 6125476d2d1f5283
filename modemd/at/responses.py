"""Parsers for information lines (3GPP TS 27.005 / 27.007) into frozen dataclasses.

Every ``parse_*`` function accepts the line with its ``+NAME:`` prefix (an
:class:`~modemd.at.events.InfoLine`'s text) or just the arguments (a
:class:`~modemd.at.events.Urc`'s ``args``), and raises :class:`ResponseParseError` naming
the line when it cannot read it. They are lenient about what real modems get wrong
(spaces, missing or unbalanced quotes, lowercase hex, omitted optional fields) and strict
about what would make the result wrong (a non-numeric index, a PDU that is not hex).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from modemd.errors import ResponseParseError

__all__ = [
    "REGISTRATION_STATES",
    "ListedPdu",
    "ListedText",
    "ListingEntry",
    "Operator",
    "Registration",
    "ResponseParseError",
    "Signal",
    "StorageIndex",
    "StorageUse",
    "choose_cnmi",
    "choose_cpms",
    "listing_entries",
    "parse_cmgl_pdu",
    "parse_cmgl_text",
    "parse_cmgr_pdu",
    "parse_cmgr_text",
    "parse_cmti",
    "parse_cnmi_test",
    "parse_cops",
    "parse_cpin",
    "parse_cpms_query",
    "parse_cpms_set",
    "parse_cpms_test",
    "parse_creg",
    "parse_csq",
    "parse_entry_pdu",
    "parse_entry_text",
]


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class StorageIndex:
    """Where a message was stored (``+CMTI: "SM",3``)."""

    storage: str
    index: int


@dataclass(frozen=True, slots=True)
class ListedPdu:
    """One message of a PDU-mode ``+CMGL`` listing or ``+CMGR`` answer.

    ``index`` is None for ``+CMGR`` (the caller knows it); ``status`` is the ``<stat>`` number
    (0 received unread, 1 received read, 2 stored unsent, 3 stored sent), None when the
    modem left it out; ``length`` is the ``<length>`` field as sent (TPDU octets, often wrong
    on real modems: the PDU decoder decides); ``pdu_hex`` is uppercase hex including the SMSC.
    """

    index: int | None
    status: int | None
    length: int
    pdu_hex: str
    alpha: str | None = None


@dataclass(frozen=True, slots=True)
class ListedText:
    """One message of a text-mode ``+CMGL`` listing or ``+CMGR`` answer.

    ``header_args`` are the header's fields after the index, unquoted (``("REC UNREAD",
    "+27748577604", "", "13/01/28,14:51:42+08")``); ``body`` is the text, its lines joined
    with ``\\n`` (empty for a status report, which has no body).
    """

    index: int | None
    header_args: tuple[str, ...]
    body: str


@dataclass(frozen=True, slots=True)
class StorageUse:
    """One storage of ``+CPMS``: its name (``""`` when the answer does not say), used, total."""

    name: str
    used: int
    total: int


@dataclass(frozen=True, slots=True)
class Signal:
    """``+CSQ``: ``rssi_dbm`` None when unknown (99), ``ber`` the RXQUAL class 0-7 or None."""

    rssi_dbm: int | None
    ber: int | None
    raw: int


#: 3GPP TS 27.007 ``<stat>`` of +CREG / +CGREG / +CEREG / +C5GREG.
REGISTRATION_STATES: Final[dict[int, str]] = {
    0: "not_registered",
    1: "registered_home",
    2: "searching",
    3: "denied",
    4: "unknown",
    5: "registered_roaming",
    6: "registered_home_sms_only",
    7: "registered_roaming_sms_only",
    8: "emergency_only",
    9: "registered_home_csfb_not_preferred",
    10: "registered_roaming_csfb_not_preferred",
    11: "rlos_only",
}
_REGISTERED: Final[frozenset[int]] = frozenset({1, 5, 6, 7, 9, 10})


@dataclass(frozen=True, slots=True)
class Registration:
    """``+CREG``-family state. ``lac`` (or TAC) and ``ci`` are uppercase hex, None if absent."""

    stat: int
    stat_text: str
    lac: str | None = None
    ci: str | None = None
    act: int | None = None

    @property
    def registered(self) -> bool:
        """Registered on the home network or roaming (SMS-only counts: SMS is what we need)."""
        return self.stat in _REGISTERED


@dataclass(frozen=True, slots=True)
class Operator:
    """``+COPS?``: selection mode, name format, operator name and access technology."""

    mode: int
    format: int | None = None
    name: str | None = None
    act: int | None = None


# ---------------------------------------------------------------------------- field helpers

_PREFIXED: Final = re.compile(r"([+^$*#%][A-Za-z0-9]+)\s*:")
_HEX: Final = re.compile(r"[0-9A-F]*")
_QUOTES: Final[str] = "\"'"


def _args(line: str, *names: str) -> str:
    """The text after ``NAME:`` when ``line`` starts with one of ``names``; a line without any
    ``+NAME:`` prefix is taken as bare arguments. Any other prefix is an error."""
    text = line.strip()
    match = _PREFIXED.match(text)
    if match is None:
        if text.upper() in names:  # "+CPMS" alone
            return ""
        return text
    if match.group(1).upper() not in names:
        raise ResponseParseError(f"expected {' or '.join(names)}", line=line)
    return text[match.end() :].strip()


def _split(args: str) -> list[str]:
    """Split on commas outside double quotes; fields are stripped, quotes kept.

    With an odd number of quotes (a modem bug) quoting cannot be trusted and every comma
    splits.
    """
    if args.count('"') % 2:
        return [f.strip() for f in args.split(",")]
    fields: list[str] = []
    start = 0
    quoted = False
    for i, char in enumerate(args):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append(args[start:i].strip())
            start = i + 1
    fields.append(args[start:].strip())
    return fields


def _unquote(field: str) -> str:
    """Remove quotes around a field, also a lone leading or trailing one."""
    field = field.strip()
    if field[:1] in _QUOTES:
        field = field[1:]
    if field[-1:] in _QUOTES:
        field = field[:-1]
    return field


def _int(field: str, what: str, line: str) -> int:
    text = _unquote(field)
    if not (text.isascii() and text.isdecimal()):
        raise ResponseParseError(f"{what} is not a number", line=line)
    return int(text)


def _opt_int(field: str, what: str, line: str) -> int | None:
    return None if _unquote(field) == "" else _int(field, what, line)


def _hex(field: str, what: str, line: str) -> str | None:
    text = _unquote(field).upper()
    if not text:
        return None
    if _HEX.fullmatch(text) is None:
        raise ResponseParseError(f"{what} is not hex", line=line)
    return text


def _nonblank(lines: Iterable[str]) -> list[str]:
    return [s for s in (line.strip() for line in lines) if s]


# ---------------------------------------------------------------------------- +CMTI


def parse_cmti(args: str) -> StorageIndex:
    """``"SM",3`` (or the whole ``+CMTI:`` / ``+CDSI:`` / ``+CBMI:`` line) -> StorageIndex."""
    fields = _split(_args(args, "+CMTI", "+CDSI", "+CBMI"))
    if len(fields) < 2 or not _unquote(fields[0]):
        raise ResponseParseError("expected <mem>,<index>", line=args)
    return StorageIndex(_unquote(fields[0]), _int(fields[1], "index", args))


# ---------------------------------------------------------------------------- PDU mode


def _pdu_line(line: str) -> str:
    text = _unquote(line).upper()
    if not text or len(text) % 2 or _HEX.fullmatch(text) is None:
        raise ResponseParseError("expected an even number of hex digits", line=line)
    return text


def parse_cmgl_pdu(lines: Iterable[str]) -> list[ListedPdu]:
    """A PDU-mode ``AT+CMGL`` answer: ``+CMGL: <index>,<stat>,[<alpha>],<length>`` lines, each
    followed by its PDU line. Blank lines are skipped; lowercase hex is accepted."""
    items = _nonblank(lines)
    listed: list[ListedPdu] = []
    for i in range(0, len(items), 2):
        header = items[i]
        fields = _split(_args(header, "+CMGL")) if header.upper().startswith("+CMGL") else []
        if len(fields) < 3:
            raise ResponseParseError(
                "expected +CMGL: <index>,<stat>,[<alpha>],<length>", line=header
            )
        if i + 1 >= len(items) or items[i + 1].upper().startswith("+CMGL"):
            raise ResponseParseError("+CMGL header without its PDU line", line=header)
        alpha = _unquote(fields[-2]) if len(fields) >= 4 else ""
        listed.append(
            ListedPdu(
                index=_int(fields[0], "index", header),
                status=_opt_int(fields[1], "stat", header),
                length=_int(fields[-1], "length", header),
                pdu_hex=_pdu_line(items[i + 1]),
                alpha=alpha or None,
            )
        )
    return listed


def parse_cmgr_pdu(lines: Iterable[str]) -> ListedPdu:
    """A PDU-mode ``AT+CMGR`` answer: ``+CMGR: <stat>,[<alpha>],<length>`` and the PDU line.

    Also reads the shortened headers modems send (``+CMGR: 0,23``, ``+CMGR: ,,27``,
    ``+CMGR: 24``). An answer without a PDU line (an empty slot) is an error.
    """
    items = _nonblank(lines)
    if not items:
        raise ResponseParseError("empty +CMGR answer", line="")
    header = items[0]
    if not header.upper().startswith("+CMGR"):
        raise ResponseParseError("expected +CMGR: <stat>,[<alpha>],<length>", line=header)
    if len(items) != 2:
        what = "+CMGR without its PDU line" if len(items) < 2 else "unexpected line after PDU"
        raise ResponseParseError(what, line=header if len(items) < 2 else items[2])
    fields = _split(_args(header, "+CMGR"))
    alpha = _unquote(fields[-2]) if len(fields) >= 3 else ""
    return ListedPdu(
        index=None,
        status=_opt_int(fields[0], "stat", header) if len(fields) >= 2 else None,
        length=_int(fields[-1], "length", header),
        pdu_hex=_pdu_line(items[1]),
        alpha=alpha or None,
    )


# ---------------------------------------------------------------------------- one entry at a time


@dataclass(frozen=True, slots=True)
class ListingEntry:
    """One entry of a ``+CMGL`` listing or a ``+CMGR`` answer, as framed by the parser: its
    header line and the body lines the header announced (none for an empty slot)."""

    header: str
    body: tuple[str, ...]

    def index(self) -> int | None:
        """The ``<index>`` of a ``+CMGL`` header, None when unreadable (or a ``+CMGR``)."""
        if not self.header.upper().startswith("+CMGL"):
            return None
        fields = _split(_args(self.header, "+CMGL"))
        text = _unquote(fields[0]) if fields else ""
        return int(text) if text.isascii() and text.isdecimal() else None

    def raw(self) -> bytes:
        """What the modem said, kept for the journal when the entry cannot be read."""
        return "\n".join((self.header, *self.body)).encode("utf-8", "replace")


def listing_entries(items: Iterable[object], prefix: str) -> list[ListingEntry]:
    """Group a framed answer (``InfoLine``s with their ``body`` flags) into entries.

    A body line before any header, or a line that is neither, is kept out of every entry.
    """
    entries: list[ListingEntry] = []
    header: str | None = None
    body: list[str] = []
    for item in items:
        text = str(getattr(item, "text", item))
        if getattr(item, "body", False):
            if header is not None:
                body.append(text)
            continue
        if text.strip().upper().startswith(prefix):
            if header is not None:
                entries.append(ListingEntry(header, tuple(body)))
            header, body = text.strip(), []
    if header is not None:
        entries.append(ListingEntry(header, tuple(body)))
    return entries


def parse_entry_pdu(entry: ListingEntry) -> ListedPdu:
    """A PDU-mode entry; ResponseParseError names what is wrong with this entry only."""
    name = "+CMGL" if entry.header.upper().startswith("+CMGL") else "+CMGR"
    fields = _split(_args(entry.header, name))
    minimum = 3 if name == "+CMGL" else 1
    if len(fields) < minimum:
        raise ResponseParseError(f"expected {name} header fields", line=entry.header)
    pdus = [line for line in entry.body if line.strip()]
    if len(pdus) != 1:
        raise ResponseParseError(f"{name} entry without its PDU line", line=entry.header)
    index = _int(fields[0], "index", entry.header) if name == "+CMGL" else None
    rest = fields[1:] if name == "+CMGL" else fields
    alpha = _unquote(rest[-2]) if len(rest) >= 3 else ""
    return ListedPdu(
        index=index,
        status=_opt_int(rest[0], "stat", entry.header) if len(rest) >= 2 else None,
        length=_int(rest[-1], "length", entry.header),
        pdu_hex=_pdu_line(pdus[0]),
        alpha=alpha or None,
    )


def parse_entry_text(entry: ListingEntry) -> ListedText:
    """A text-mode entry: header fields unquoted, body lines joined with ``\\n`` as sent."""
    name = "+CMGL" if entry.header.upper().startswith("+CMGL") else "+CMGR"
    fields = _split(_args(entry.header, name))
    index = _int(fields[0], "index", entry.header) if name == "+CMGL" else None
    args = tuple(_unquote(f) for f in (fields[1:] if name == "+CMGL" else fields))
    if not args or not args[0]:
        raise ResponseParseError(f"{name} entry without <stat>", line=entry.header)
    return ListedText(index, args, "\n".join(entry.body))


# ---------------------------------------------------------------------------- text mode


def parse_cmgl_text(lines: Iterable[str]) -> list[ListedText]:
    """A text-mode ``AT+CMGL`` answer: each ``+CMGL: <index>,...`` header is followed by the
    message text, which may span lines until the next header (status reports have none)."""
    listed: list[ListedText] = []
    header: str | None = None
    body: list[str] = []

    def close() -> None:
        if header is not None:
            fields = _split(_args(header, "+CMGL"))
            index = _int(fields[0], "index", header)
            args = tuple(_unquote(f) for f in fields[1:])
            listed.append(ListedText(index, args, _join_body(body)))

    for line in lines:
        if line.lstrip().upper().startswith("+CMGL"):
            close()
            header, body = line.strip(), []
        elif header is not None:
            body.append(line)
        elif line.strip():
            raise ResponseParseError("text before the first +CMGL header", line=line)
    close()
    return listed


def parse_cmgr_text(lines: Iterable[str]) -> ListedText:
    """A text-mode ``AT+CMGR`` answer: the ``+CMGR:`` header, then the text (any lines)."""
    items = list(lines)
    while items and not items[0].strip():
        items.pop(0)
    if not items or not items[0].lstrip().upper().startswith("+CMGR"):
        raise ResponseParseError("expected +CMGR: <stat>,...", line=items[0] if items else "")
    fields = _split(_args(items[0], "+CMGR"))
    return ListedText(None, tuple(_unquote(f) for f in fields), _join_body(items[1:]))


def _join_body(lines: list[str]) -> str:
    text = "\n".join(line.rstrip("\r\n") for line in lines)
    return text.strip("\n")


# ---------------------------------------------------------------------------- test commands


def _groups(args: str, line: str) -> list[str]:
    """The top-level ``(...)`` groups of a test-command answer, as their inner text.

    A list that is wrapped in one more pair of parentheses (``(("SM","BM"),("SM"))``) is
    unwrapped; a list without parentheses (``"SM","SM","SM"``) gives one group per field.
    """
    text = args.strip()
    if not text:
        return []
    if "(" not in text and ")" not in text:
        return [f for f in (f.strip() for f in text.split(",")) if f]
    groups: list[str] = []
    depth = 0
    start = 0
    bare_start: int | None = None  # a single value outside parentheses ("SM" in a mixed form)
    for i, char in enumerate(text):
        if char == "(":
            if bare_start is not None:
                raise ResponseParseError("unexpected '(' inside a value", line=line)
            if depth == 0:
                start = i + 1
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ResponseParseError("unbalanced parentheses", line=line)
            if depth == 0:
                groups.append(text[start:i])
        elif depth == 0 and char == ",":
            if bare_start is not None:
                groups.append(text[bare_start:i].strip())
                bare_start = None
        elif depth == 0 and char not in " \t" and bare_start is None:
            bare_start = i
    if bare_start is not None:
        groups.append(text[bare_start:].strip())
    if depth != 0:
        raise ResponseParseError("unbalanced parentheses", line=line)
    if len(groups) == 1 and groups[0].strip().startswith("("):
        return _groups(groups[0], line)
    return groups


def parse_cpms_test(line: str) -> tuple[tuple[str, ...], ...]:
    """``+CPMS: ("SM","ME","MT"),("SM","ME"),("SM")`` -> the storages offered for
    <mem1> (read/delete), <mem2> (write/send), <mem3> (receive). Also reads the unquoted,
    unparenthesised, doubly parenthesised and badly quoted forms real modems send; an empty
    answer gives ``()``."""
    args = _args(line, "+CPMS")
    result: list[tuple[str, ...]] = []
    for group in _groups(args, line):
        names = tuple(n for n in (_unquote(f) for f in group.split(",")) if n)
        for name in names:
            if not name.replace("_", "").isalnum():
                raise ResponseParseError(f"bad storage name {name!r}", line=line)
        result.append(names)
    return tuple(result)


def parse_cpms_query(line: str) -> list[StorageUse]:
    """``+CPMS: "SM",5,30,"SM",5,30,"ME",0,100`` (``AT+CPMS?``) -> name, used, total each."""
    fields = _split(_args(line, "+CPMS"))
    if len(fields) % 3 or not fields[0]:
        raise ResponseParseError("expected <mem>,<used>,<total> triples", line=line)
    uses = []
    for i in range(0, len(fields), 3):
        name = _unquote(fields[i])
        if not name:
            raise ResponseParseError("storage name missing", line=line)
        uses.append(
            StorageUse(name, _int(fields[i + 1], "used", line), _int(fields[i + 2], "total", line))
        )
    return uses


def parse_cpms_set(line: str, names: Sequence[str] = ()) -> list[StorageUse]:
    """``+CPMS: 14,50,14,50`` (the answer to ``AT+CPMS=...``) -> used, total per storage set.

    ``names`` are the storages that were set, in order, used to name the entries (``""``
    beyond them). A modem that answers in the query form is read as such.
    """
    fields = _split(_args(line, "+CPMS"))
    if fields and fields[0][:1] in _QUOTES:
        return parse_cpms_query(line)
    if len(fields) % 2 or not fields[0]:
        raise ResponseParseError("expected <used>,<total> pairs", line=line)
    return [
        StorageUse(
            names[i // 2] if i // 2 < len(names) else "",
            _int(fields[i], "used", line),
            _int(fields[i + 1], "total", line),
        )
        for i in range(0, len(fields), 2)
    ]


def _int_set(group: str, line: str) -> tuple[int, ...]:
    values: set[int] = set()
    for item in (f.strip() for f in group.split(",")):
        if not item:
            continue
        low, dash, high = item.partition("-")
        first = _int(low, "value", line)
        last = _int(high, "value", line) if dash else first
        if last < first or last - first > 255:
            raise ResponseParseError(f"bad range {item!r}", line=line)
        values.update(range(first, last + 1))
    return tuple(sorted(values))


def parse_cnmi_test(line: str) -> tuple[tuple[int, ...], ...]:
    """``+CNMI: (0-2),(0,1,3),(0),(0,1),(0,1)`` -> the values offered for <mode>, <mt>, <bm>,
    <ds>, <bfr>, ranges expanded: ``((0, 1, 2), (0, 1, 3), (0,), (0, 1), (0, 1))``."""
    args = _args(line, "+CNMI")
    return tuple(_int_set(group, line) for group in _groups(args, line))


# ---------------------------------------------------------------------------- status queries


def parse_csq(line: str) -> Signal:
    """``+CSQ: <rssi>,<ber>``. rssi 0..31 is -113..-51 dBm in 2 dB steps, 100..191 the
    extended range -116..-25 dBm, 99 and 199 unknown; ber 0..7, 99 unknown."""
    fields = _split(_args(line, "+CSQ"))
    if len(fields) != 2:
        raise ResponseParseError("expected +CSQ: <rssi>,<ber>", line=line)
    raw = _int(fields[0], "rssi", line)
    ber = _int(fields[1], "ber", line)
    if raw <= 31:
        dbm: int | None = -113 + 2 * raw
    elif 100 <= raw <= 191:
        dbm = raw - 216
    else:
        dbm = None
    return Signal(dbm, ber if ber <= 7 else None, raw)


def _creg_form(fields: list[str]) -> Literal["query", "urc"]:
    """Tell ``<n>,<stat>[,<lac>,<ci>[,<AcT>]]`` (query) from ``<stat>[,<lac>,<ci>...]`` (URC).

    The query form has a small number in second place; the URC form has the (quoted or hex)
    location area code there.
    """
    if len(fields) == 1:
        return "urc"
    if len(fields) == 2:
        return "query"
    n, second = fields[0], fields[1]
    small = second.isascii() and second.isdecimal() and int(second) in REGISTRATION_STATES
    return "query" if small and n.isdecimal() and int(n) <= 3 else "urc"


def parse_creg(line: str, *, form: Literal["query", "urc"] | None = None) -> Registration:
    """``+CREG`` / ``+CGREG`` / ``+CEREG`` / ``+C5GREG``, in the query form
    ``<n>,<stat>[,<lac>,<ci>[,<AcT>]]`` or the URC form ``<stat>[,<lac>,<ci>[,<AcT>]]``.

    ``form`` says which; None guesses (exact for every real answer seen). Quoting is not
    trusted (modems send single, unbalanced or no quotes; none of the fields holds a comma);
    an empty lac is None.
    """
    args = _args(line, "+CREG", "+CGREG", "+CEREG", "+C5GREG")
    fields = [f.strip() for f in args.split(",")]
    if not args or (form or _creg_form(fields)) == "query":
        if len(fields) < 2:
            raise ResponseParseError("expected <n>,<stat>", line=line)
        _int(fields[0], "n", line)
        fields = fields[1:]
    stat = _int(fields[0], "stat", line)
    return Registration(
        stat=stat,
        stat_text=REGISTRATION_STATES.get(stat, "unknown"),
        lac=_hex(fields[1], "lac", line) if len(fields) > 1 else None,
        ci=_hex(fields[2], "ci", line) if len(fields) > 2 else None,
        act=_opt_int(fields[3], "AcT", line) if len(fields) > 3 else None,
    )


def parse_cops(line: str) -> Operator:
    """``+COPS: <mode>[,<format>,<oper>[,<AcT>]]`` (the ``AT+COPS?`` answer)."""
    fields = _split(_args(line, "+COPS"))
    if not fields[0] or len(fields) > 4 or fields[0].startswith("("):
        raise ResponseParseError("expected +COPS: <mode>[,<format>,<oper>[,<AcT>]]", line=line)
    name = _unquote(fields[2]) if len(fields) > 2 else ""
    return Operator(
        mode=_int(fields[0], "mode", line),
        format=_opt_int(fields[1], "format", line) if len(fields) > 1 else None,
        name=name or None,
        act=_opt_int(fields[3], "AcT", line) if len(fields) > 3 else None,
    )


def parse_cpin(line: str) -> str:
    """``+CPIN: READY`` -> ``"READY"`` (or ``"SIM PIN"``, ``"SIM PUK"``, ...)."""
    code = _unquote(_args(line, "+CPIN")).strip()
    if not code:
        raise ResponseParseError("expected +CPIN: <code>", line=line)
    return code


# ---------------------------------------------------------------------------- choices


def _pick(offered: Sequence[int], preferred: Sequence[int]) -> int | None:
    for value in preferred:
        if value in offered:
            return value
    return None


def choose_cnmi(options: Sequence[Sequence[int]], *, prefer_direct: bool = False,
                store_reports: bool = False) -> str:
    """The ``AT+CNMI=`` argument string for what ``AT+CNMI=?`` offered.

    <mode> 2 (buffer in the TA while the link is busy), else 1, else 3; <mt> 1 (store, then
    ``+CMTI``), or 2 (``+CMT`` direct delivery) when ``prefer_direct`` and offered (and
    when 1 is not); <bm> 0; <ds> 1 (status reports as ``+CDS``) if offered, else 2
    (stored, then ``+CDSI``), else 0; with ``store_reports`` 2 first, so a report that comes
    while nobody listens waits in SR instead of being handed to no one;
    <bfr> 0 (flush buffered indications). Parameters the
    modem does not list are left off (from the first empty one). Raises
    :class:`ResponseParseError` if the modem offers no mode or no <mt> that forwards
    new-message indications.
    """
    what = ",".join("(" + ",".join(map(str, g)) + ")" for g in options)
    if len(options) < 2:
        raise ResponseParseError("AT+CNMI=? lists fewer than <mode>,<mt>", line=what)
    mode = _pick(options[0], (2, 1, 3))
    mt = _pick(options[1], (2, 1, 3) if prefer_direct else (1, 2, 3))
    if mode is None or mt is None:
        raise ResponseParseError("no <mode>/<mt> that forwards SMS indications", line=what)
    chosen = [mode, mt]
    reports = (2, 1, 0) if store_reports else (1, 2, 0)
    for offered, preferred in zip(options[2:5], ((0,), reports, (0,)), strict=False):
        if not offered:
            break
        value = _pick(offered, preferred)
        chosen.append(offered[0] if value is None else value)
    return ",".join(map(str, chosen))


_NOT_FOR_SMS: Final[frozenset[str]] = frozenset({"BM", "SR"})


def choose_cpms(
    options: Sequence[Sequence[str]], prefer: Sequence[str] = ("ME", "SM", "MT")
) -> tuple[str, str, str]:
    """Storages (<mem1> read/delete, <mem2> write/send, <mem3> receive) from ``AT+CPMS=?``.

    <mem3> is chosen first by ``prefer``; <mem1> and <mem2> take the same storage when they
    can, so that messages are read where they arrive. A storage not in ``prefer`` is used
    only when nothing preferred is offered (never BM/SR if anything else is). An entry is
    ``""`` when the modem has no such parameter (Wavecom lists only <mem1>,<mem2>): leave it
    off the ``AT+CPMS=`` command.
    """
    groups = [tuple(g) for g in options[:3]]
    if not any(groups):
        raise ResponseParseError("AT+CPMS=? offers no storage", line=repr(list(options)))
    groups += [()] * (3 - len(groups))

    def pick(offered: tuple[str, ...], first: str = "") -> str:
        if not offered:
            return ""
        for name in (first, *prefer):
            if name and name in offered:
                return name
        usable = [n for n in offered if n not in _NOT_FOR_SMS]
        return usable[0] if usable else ""  # never BM/SR: leave the parameter off

    mem3 = pick(groups[2])
    mem1 = pick(groups[0], mem3)
    mem2 = pick(groups[1], mem1 or mem3)
    if not mem1:
        raise ResponseParseError("AT+CPMS=? offers no storage for SMS (only BM/SR)",
                                 line=repr(list(options)))
    return mem1, mem2, mem3
