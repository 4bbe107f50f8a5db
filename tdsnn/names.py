"""Names of models, tags and other identifiers that reach files, paths and generated code.

One strict pattern for every part of a name (an architecture, a tag, a neural-data pack,
a sweep): lower-case ASCII letters and digits, then letters, digits, ``_`` or ``-``, at most
64 characters. A model name is ``arch`` or ``arch.tag``. Anything else is rejected with
``InvalidName`` before it is used, so no name can hold a path separator, a quote or a
newline; generated code still writes names only as ``repr()`` literals.
"""
from __future__ import annotations

import re

#: One part of a name: ``arch``, ``tag``, a pack or sweep name.
PART_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
_PART = re.compile(PART_PATTERN)
_MODEL = re.compile(rf"{PART_PATTERN}(?:\.{PART_PATTERN})?")


class InvalidName(ValueError):
    """A name or tag that does not match the strict pattern."""


def check_part(value: object, what: str = "name") -> str:
    """``value`` when it is one valid name part (e.g. a tag), else ``InvalidName``."""
    if not isinstance(value, str) or not _PART.fullmatch(value):
        raise InvalidName(f"invalid {what} {value!r}: use lower-case letters, digits, '_' or '-', "
                          f"starting with a letter or digit, at most 64 characters")
    return value


def check_model_name(value: object) -> str:
    """``value`` when it is a valid ``arch`` or ``arch.tag`` name, else ``InvalidName``."""
    if not isinstance(value, str) or not _MODEL.fullmatch(value):
        raise InvalidName(f"invalid model name {value!r}: use 'arch' or 'arch.tag', each part lower-case "
                          f"letters, digits, '_' or '-', starting with a letter or digit")
    return value
