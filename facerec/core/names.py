"""A person's name, checked as what it becomes: a folder name on disk and a line on screen.

A name is accepted only if it is valid UTF-8 text (a lone surrogate, which is how Python carries
undecodable bytes from the command line, is not: OpenCV crashes on such paths and SQLite cannot
store them), at most :data:`MAX_NAME_BYTES` bytes once encoded (file systems limit a folder name
to 255 *bytes*, and 128 "é" are 256), free of control, line-separator and bidirectional-override
characters and invisible format characters other than the joiners (a name must print as itself: U+202E would display "evil" backwards, a newline would
forge output lines), and free of path tricks (separators, NUL, ".", "..", a leading dot that would
hide the folder, surrounding spaces). Validation happens before anything is written.
"""

from __future__ import annotations

import unicodedata

from facerec.core.errors import FaceRecError

MAX_NAME_BYTES = 128
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_JOINERS = frozenset("\u200c\u200d")  # needed inside words of Persian, Indic scripts and emoji sequences
_FORBIDDEN_CATEGORIES = {"Cc": "a control character", "Cs": "an undecodable byte", "Zl": "a line separator",
                         "Zp": "a paragraph separator", "Co": "a private-use character", "Cn": "an unassigned character"}


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a person's name, or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return "a person's name cannot be empty"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid UTF-8 text"
    if len(encoded) > MAX_NAME_BYTES:
        return f"it is {len(encoded)} bytes in UTF-8; a name is limited to {MAX_NAME_BYTES}"
    for char in name:
        if char in _BIDI_CONTROLS:
            return f"it holds the bidirectional control U+{ord(char):04X}"
        category = unicodedata.category(char)
        if category in _FORBIDDEN_CATEGORIES:
            return f"it holds {_FORBIDDEN_CATEGORIES[category]} (U+{ord(char):04X})"
        if category == "Cf" and char not in _JOINERS:
            return f"it holds the invisible format character U+{ord(char):04X}"
    if all(unicodedata.category(c) in ("Zs", "Cf") for c in name):
        return "it has no visible character"
    if name != name.strip():
        return "it has surrounding spaces"
    if any(c in name for c in "/\\") or name in (".", "..") or ".." in name or name.startswith("."):
        return "no path separators, '..' or leading '.'"
    return None


def validate_name(name: str) -> str:
    """``name`` if it is a valid person's name (see the module docstring), else a FaceRecError."""
    problem = name_problem(name)
    if problem:
        raise FaceRecError(f"invalid name {ascii(name) if isinstance(name, str) else name!r}: {problem}")
    return name
