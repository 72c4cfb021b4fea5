"""Text from outside (a file's name, a server's words) made safe to print on a terminal."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with each character a terminal may act on or hide escaped as ``repr`` escapes
    it: control characters (``\\x1b``, ``\\r``, ``\\n``), format characters (``\\u202e``,
    which reverses what follows), undecodable bytes of a file name (``\\udcff``); the rest,
    accented letters too, as it is."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
