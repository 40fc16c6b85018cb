"""A data-only pickle reader with hard limits, for insightface ``.bin`` sets.

Python's unpickler cannot be made safe against hostile *sizes* by restricting ``find_class``: a
``LONG_BINPUT`` to memo slot 605,424,337 makes it allocate a 9.8 GB memo array, and a permitted
``bytearray(2_000_000_000)`` allocates 2 GB before anything can look at it. So this module
interprets the pickle opcodes itself (the format is documented in CPython's ``pickletools``), over
bytes already in memory, with:

- an opcode whitelist (data only: numbers, strings, bytes, lists, tuples, the memo, and the few
  numpy / ``bytearray`` / ``_codecs.encode`` calls that ``.bin`` files written by Python 2 and 3
  contain); every other global or opcode is refused, so no code ever runs;
- the memo as a dict with a cap on its entries (no slot can allocate anything);
- caps on the number of opcodes (time), on the bytes any call may create (``bytearray(n)`` with
  an int is never allowed; copies are charged against a budget proportional to the file), on
  long-integer lengths and on array dimensions.

Bytes payloads are zero-copy ``memoryview`` slices of the file. Any violation is a
:class:`PickleRefused`; callers turn it into a one-line error naming the file.
"""

from __future__ import annotations

import codecs
import struct

import numpy as np

MAX_OPS = 4_000_000  # lfw.bin needs ~40 k; bounds the time spent on any input to seconds
MAX_MEMO = 1_000_000
MAX_LONG_BYTES = 64
MAX_ARRAY_DIMS = 8
_DTYPES = {"b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8"}
_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct", ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy.core.multiarray", "scalar"): "scalar", ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy", "ndarray"): "ndarray", ("numpy", "dtype"): "dtype",
    ("_codecs", "encode"): "encode",  # how Python 3 writes bytes at protocol <= 2
    ("builtins", "bytearray"): "bytearray", ("__builtin__", "bytearray"): "bytearray",
}


class PickleRefused(ValueError):
    """The data is not a pickle this reader accepts (malformed, code, or over a limit)."""


class _Global(str):
    """A resolved, whitelisted global (only ever called by REDUCE through :func:`_call`)."""


class _Pending:
    """A numpy array or dtype made by REDUCE, completed by BUILD (as numpy's ``__setstate__`` would)."""

    def __init__(self, kind: str, code: str = ""):
        self.kind, self.code, self.value = kind, code, None


class _Reader:
    def __init__(self, data: bytes | memoryview, copy_budget: int):
        self.data = memoryview(data)
        self.pos = 0
        self.budget = copy_budget

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise PickleRefused("truncated pickle")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def line(self) -> bytes:
        end = bytes(self.data[self.pos:self.pos + (1 << 16)]).find(b"\n")  # no text argument is longer
        if end < 0:
            raise PickleRefused("unterminated text argument")
        out = bytes(self.data[self.pos:self.pos + end])
        self.pos += end + 1
        return out

    def charge(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise PickleRefused("the pickle would create more data than the file holds")

    def text(self, raw: memoryview | bytes) -> str:
        self.charge(len(raw))
        try:
            return str(raw, "utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise PickleRefused("a text value is not UTF-8") from None


def loads(data: bytes | memoryview, copy_budget: int | None = None):
    """The object a data-only pickle holds (bytes as ``memoryview``, arrays as numpy arrays).

    Raises:
        PickleRefused: malformed, not data only, or over a limit.
    """
    machine = _Machine(_Reader(data, copy_budget if copy_budget is not None else 2 * len(data) + (1 << 20)))
    for _ in range(MAX_OPS):
        op = machine.r.take(1).tobytes()
        if op == b".":  # STOP
            return machine.result()
        step = _STEPS.get(op)
        if step is None:
            raise PickleRefused(f"opcode {op!r} at byte {machine.r.pos - 1} is not allowed in a data-only pickle")
        step(machine, op)
    raise PickleRefused(f"more than {MAX_OPS:,} pickle opcodes")


class _Machine:
    """The pickle machine's stack, marks and memo, with one method per family of opcodes (the
    opcodes and their arguments as ``pickletools`` documents them); anything else is refused."""

    def __init__(self, reader: _Reader):
        self.r, self.stack, self.marks, self.memo = reader, [], [], {}

    def result(self):
        if len(self.stack) != 1 or self.marks:
            raise PickleRefused("the pickle does not end with exactly one object")
        return self.stack[0]

    def pop_mark(self) -> list:
        if not self.marks:
            raise PickleRefused("no MARK on the stack")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def pop(self):
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise PickleRefused("stack underflow")
        return self.stack.pop()

    def control(self, op: bytes) -> None:
        if op == b"\x80":  # PROTO
            if self.r.unpack("<B") > 5:
                raise PickleRefused("unsupported pickle protocol")
        elif op == b"\x95":  # FRAME (framing is only a hint; the data is all in memory)
            self.r.unpack("<Q")
        elif op == b"(":
            self.marks.append(len(self.stack))
        elif op == b"0":
            self.pop()
        elif op == b"1":
            self.pop_mark()
        else:  # DUP
            if not self.stack:
                raise PickleRefused("stack underflow")
            self.stack.append(self.stack[-1])

    def number(self, op: bytes) -> None:
        r = self.r
        if op in (b"N", b"\x88", b"\x89"):
            value = {b"N": None, b"\x88": True, b"\x89": False}[op]
        elif op == b"I":
            text = r.line()
            value = True if text == b"01" else False if text == b"00" else _int(text)
        elif op in (b"J", b"K", b"M", b"G"):
            value = r.unpack({b"J": "<i", b"K": "<B", b"M": "<H", b"G": ">d"}[op])
        elif op == b"L":
            value = _int(r.line().rstrip(b"L"))
        elif op == b"F":
            value = _float(r.line())
        else:  # LONG1, LONG4
            n = r.unpack("<B" if op == b"\x8a" else "<i")
            if n > MAX_LONG_BYTES:
                raise PickleRefused("integer too long")
            value = int.from_bytes(r.take(n), "little", signed=True)
        self.stack.append(value)

    def string(self, op: bytes) -> None:
        r = self.r
        if op == b"S":  # protocol-0 string: a quoted repr, escapes decoded (encoding="bytes")
            text = r.line()
            if len(text) < 2 or text[:1] != text[-1:] or text[:1] not in (b"'", b'"'):
                raise PickleRefused("malformed STRING argument")
            r.charge(len(text))
            value = memoryview(_escape_decode(text[1:-1]))
        elif op == b"\x96":  # BYTEARRAY8
            raw = r.take(r.unpack("<Q"))
            r.charge(len(raw))
            value = bytearray(raw)
        elif op == b"V":
            text = r.line()
            r.charge(len(text))
            value = _unicode_escape(text)
        elif op in (b"X", b"\x8c", b"\x8d"):  # BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
            value = r.text(r.take(r.unpack({b"X": "<I", b"\x8c": "<B", b"\x8d": "<Q"}[op])))
        else:  # BINSTRING, SHORT_BINSTRING, BINBYTES, SHORT_BINBYTES, BINBYTES8: views, not copies
            value = r.take(r.unpack({b"T": "<i", b"U": "<B", b"B": "<I", b"C": "<B", b"\x8e": "<Q"}[op]))
        self.stack.append(value)

    def container(self, op: bytes) -> None:
        stack = self.stack
        if op == b"]":
            stack.append([])
        elif op == b")":
            stack.append(())
        elif op == b"a":
            item = self.pop()
            _append(stack, [item])
        elif op == b"e":
            _append(stack, self.pop_mark())
        elif op == b"l":
            stack.append(self.pop_mark())
        elif op == b"t":
            stack.append(tuple(self.pop_mark()))
        else:  # TUPLE1, TUPLE2, TUPLE3
            n = op[0] - 0x84
            if len(stack) - (self.marks[-1] if self.marks else 0) < n:
                raise PickleRefused("stack underflow")
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)

    def memo_op(self, op: bytes) -> None:
        r = self.r
        if op in (b"p", b"q", b"r", b"\x94"):  # PUT, BINPUT, LONG_BINPUT, MEMOIZE
            index = {b"p": lambda: _int(r.line()), b"q": lambda: r.unpack("<B"), b"r": lambda: r.unpack("<I"),
                     b"\x94": lambda: len(self.memo)}[op]()
            if not self.stack:
                raise PickleRefused("memo write from an empty stack")
            if index not in self.memo and len(self.memo) >= MAX_MEMO:
                raise PickleRefused(f"more than {MAX_MEMO:,} memo entries")
            self.memo[index] = self.stack[-1]
        else:  # GET, BINGET, LONG_BINGET
            index = _int(r.line()) if op == b"g" else r.unpack("<B" if op == b"h" else "<I")
            if index not in self.memo:
                raise PickleRefused(f"memo entry {index} was never written")
            self.stack.append(self.memo[index])

    def objects(self, op: bytes) -> None:
        if op == b"c":  # GLOBAL
            module, name = self.r.line().decode("ascii", "replace"), self.r.line().decode("ascii", "replace")
            self.stack.append(_resolve(module, name))
        elif op == b"\x93":  # STACK_GLOBAL
            name, module = self.pop(), self.pop()
            if not isinstance(module, str) or not isinstance(name, str):
                raise PickleRefused("STACK_GLOBAL needs two strings")
            self.stack.append(_resolve(module, name))
        elif op == b"R":  # REDUCE
            args, func = self.pop(), self.pop()
            self.stack.append(_call(self.r, func, args))
        else:  # BUILD
            state = self.pop()
            if not self.stack:
                raise PickleRefused("stack underflow")
            _build(self.stack[-1], state)


_STEPS = {op: step for ops, step in (
    (b"\x80\x95(012", _Machine.control),
    (b"N\x88\x89IJKMLFG\x8a\x8b", _Machine.number),
    (b"STUBC\x8e\x96VX\x8c\x8d", _Machine.string),
    (b"]ael)t\x85\x86\x87", _Machine.container),
    (b"pqr\x94ghj", _Machine.memo_op),
    (b"c\x93Rb", _Machine.objects),
) for op in (bytes([o]) for o in ops)}


def _int(text: bytes) -> int:
    return _parse_number(text, int, 40, "integer")


def _float(text: bytes) -> float:
    return _parse_number(text, float, 64, "float")


def _parse_number(text: bytes, convert, max_length: int, what: str):
    """``convert(text)`` for a text opcode argument of at most ``max_length`` bytes."""
    try:
        if len(text) > max_length:
            raise ValueError
        return convert(text)
    except ValueError:
        raise PickleRefused(f"malformed {what} argument") from None


def _escape_decode(text: bytes) -> bytes:
    try:
        return codecs.escape_decode(text)[0]
    except (ValueError, UnicodeError):
        raise PickleRefused("malformed STRING argument") from None


def _unicode_escape(text: bytes) -> str:
    try:
        return text.decode("raw-unicode-escape")
    except UnicodeError:
        raise PickleRefused("malformed UNICODE argument") from None


def _append(stack: list, items: list) -> None:
    if not stack or not isinstance(stack[-1], list):
        raise PickleRefused("APPEND to something that is not a list")
    stack[-1].extend(items)


def _resolve(module: str, name: str) -> _Global:
    kind = _GLOBALS.get((module, name))
    if kind is None:
        raise PickleRefused(f"refusing to load {module}.{name}: a .bin set holds only data")
    return _Global(kind)


def _bytes_like(value) -> bool:
    return isinstance(value, (memoryview, bytes, bytearray))


def _call(r: _Reader, func, args):
    if not isinstance(func, _Global) or not isinstance(args, tuple):
        raise PickleRefused("REDUCE of something that is not an allowed function")
    if func == "encode" and len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
        r.charge(len(args[0]))
        return _latin1(args[0])
    if func == "bytearray":
        if not args:
            return bytearray()
        if len(args) == 1 and _bytes_like(args[0]):
            r.charge(len(args[0]))
            return bytearray(args[0])
        if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
            r.charge(len(args[0]))
            return bytearray(_latin1(args[0]))
        raise PickleRefused("bytearray() is allowed only of bytes or a latin-1 string")  # never bytearray(n)
    if func == "reconstruct" and len(args) == 3 and args[0] == "ndarray" and _bytes_like(args[2]):
        return _Pending("array")
    if func == "dtype" and len(args) == 3 and isinstance(args[0], str) and args[0] in _DTYPES:
        return _Pending("dtype", args[0])
    if func == "scalar" and len(args) == 2 and isinstance(args[0], _Pending) and args[0].kind == "dtype":
        dtype = args[0].value
        if dtype is None or not _bytes_like(args[1]) or len(args[1]) != dtype.itemsize:
            raise PickleRefused("malformed numpy scalar")
        return np.frombuffer(args[1], dtype)[0]
    raise PickleRefused(f"call of {func} with these arguments is not allowed")


def _latin1(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise PickleRefused("a bytes value is not latin-1 text") from None


def _build(target, state) -> None:
    if not isinstance(target, _Pending) or target.value is not None or not isinstance(state, tuple):
        raise PickleRefused("BUILD is only allowed on a numpy array or dtype")
    if target.kind == "dtype":
        if len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise PickleRefused("malformed numpy dtype")
        target.value = np.dtype(target.code).newbyteorder(state[1] if state[1] != "|" else "=")
        return
    if len(state) != 5:
        raise PickleRefused("malformed numpy array")
    _, shape, dtype, fortran, raw = state
    if (not isinstance(shape, tuple) or len(shape) > MAX_ARRAY_DIMS
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise PickleRefused("malformed numpy array shape")
    if not isinstance(dtype, _Pending) or dtype.kind != "dtype" or dtype.value is None or not _bytes_like(raw):
        raise PickleRefused("a numpy array must be of a plain numeric dtype with raw data")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.value.itemsize != len(raw):
        raise PickleRefused("numpy array data does not match its shape")
    target.value = np.frombuffer(raw, dtype.value).reshape(shape, order="F" if fortran else "C")


def resolve(value):
    """A value from :func:`loads` with completed numpy objects unwrapped (unfinished ones refused)."""
    if isinstance(value, _Pending):
        if value.value is None or value.kind != "array":
            raise PickleRefused("an unfinished numpy object")
        return value.value
    return value
