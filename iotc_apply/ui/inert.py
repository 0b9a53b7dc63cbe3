"""Strings from outside made harmless to show: on a terminal, in markdown, in a CI log.

Names, display names, entity names and file names come from the account (anyone with write
access to it, or a service that does not validate them) and from pull requests. Shown as
they are, an ESC or OSC sequence sets the window title, clears the screen or prints a fake
"No changes."; a newline in a markdown plan closes its fence and forges what follows. Every
renderer passes such strings through here.
May import: nothing else of iotc_apply (and not rich either).
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 (CSI alone is \x9b), and the Unicode line and
# paragraph separators and bidirectional overrides that reorder what a reader sees
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# what can open markdown inline constructs mid-line: code, emphasis, links and images,
# table cells, strikethrough (a line's start is never untrusted text here)
_MARKDOWN = re.compile(r"([\\`*_\[\]|~])")


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str, one_line: bool = False) -> str:
    """`text` with every control character written as its escape (`\\x1b`); with
    `one_line`, newlines too, for a value that must stay on its line."""
    if text.isprintable():  # every character escaped here is unprintable: the fast path
        return text
    pattern = _CONTROL_OR_NEWLINE if one_line else _CONTROL
    return pattern.sub(_escaped, text)


def markdown_text(text: str) -> str:
    """One line of untrusted text for markdown outside a code block: inert, markdown
    punctuation backslash-escaped, HTML and entities made text, @mentions broken (a
    zero-width space after the @, as Renovate does), so it reads as written and does
    nothing else."""
    text = inert(text, one_line=True)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN.sub(r"\\\1", text)
    return text.replace("@", "@&#8203;")


def fence(lines: list[str], info: str = "") -> str:
    """A fenced code block of `lines` (each made one inert line) whose fence is longer than
    any run of backticks inside, so no content can close it."""
    body = [inert(line, one_line=True) for line in lines]
    longest = max((len(run) for line in body for run in re.findall(r"`+", line)), default=0)
    mark = "`" * max(3, longest + 1)
    return "\n".join([mark + info, *body, mark])


def workflow_safe(line: str) -> str:
    """A line for a CI log: one that would start a GitHub workflow command (`::`) is
    prefixed with a space, so the runner prints it instead of obeying it."""
    return " " + line if line.lstrip().startswith("::") else line
