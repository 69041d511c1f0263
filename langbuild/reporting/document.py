"""A tiny document model (headings, paragraphs, lists, tables, code, images) and its Markdown rendering.

The report and the model card are built as these blocks rather than as Markdown text, so that the HTML
rendering (:mod:`.html`) comes from the same structure and user-controlled text (task names, reasons,
file names) is escaped once per output format instead of being pasted into markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Strong:
    """Bold text."""

    text: str


@dataclass(frozen=True)
class Code:
    """Inline code (a setting, a file name, a command)."""

    text: str


Inline = str | Strong | Code
Rich = str | tuple[Inline, ...]


@dataclass(frozen=True)
class Heading:
    level: int
    text: Rich


@dataclass(frozen=True)
class Paragraph:
    text: Rich


@dataclass(frozen=True)
class Bullets:
    items: tuple[Rich, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Rich, ...], ...]
    # "l" or "r" per column; numbers are right-aligned so their digits line up.
    align: tuple[str, ...] = ()

    def alignment(self, column: int) -> str:
        return self.align[column] if column < len(self.align) else "l"


@dataclass(frozen=True)
class CodeBlock:
    text: str
    language: str = ""


@dataclass(frozen=True)
class Image:
    """A plot: ``link`` is relative to the Markdown file; ``file`` is read to embed it in HTML."""

    link: str
    alt: str
    file: Path = field(compare=False)


Block = Heading | Paragraph | Bullets | Table | CodeBlock | Image


def rich(*parts: Inline) -> tuple[Inline, ...]:
    """Join spans into one run of text: ``rich("Base model ", Strong(name), ".")``."""
    return tuple(part for part in parts if part != "")


def spans(text: Rich) -> tuple[Inline, ...]:
    return (text,) if isinstance(text, str) else text


def plain(text: Rich) -> str:
    """The words without any markup (for alt texts and titles)."""
    return "".join(part if isinstance(part, str) else part.text for part in spans(text))


# ---------------------------------------------------------------- Markdown

def _md_escape(text: str, in_table: bool = False) -> str:
    """Backslash-escape what would otherwise turn into emphasis, code, links, raw HTML or (on GitHub) math.

    Brackets are only escaped where they could start a link (``](``), so intervals like
    ``0.412 [0.371, 0.455]`` stay readable in the raw Markdown.
    """
    escaped = text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("<", "\\<").replace("$", "\\$")
    escaped = escaped.replace("](", "\\](")
    if in_table:
        escaped = escaped.replace("|", "\\|").replace("\n", " ")
    return escaped


def _md_code_span(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_inline(text: Rich, in_table: bool = False) -> str:
    out = []
    for part in spans(text):
        if isinstance(part, Strong):
            out.append(f"**{_md_escape(part.text, in_table)}**")
        elif isinstance(part, Code):
            code = _md_code_span(part.text)
            out.append(code.replace("|", "\\|") if in_table else code)
        else:
            out.append(_md_escape(part, in_table))
    return "".join(out)


def _md_table(table: Table) -> list[str]:
    separator = ["---:" if table.alignment(i) == "r" else "---" for i in range(len(table.header))]
    lines = ["| " + " | ".join(_md_escape(cell, True) for cell in table.header) + " |", "|" + "|".join(separator) + "|"]
    lines += ["| " + " | ".join(md_inline(cell, True) for cell in row) + " |" for row in table.rows]
    return lines


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Heading):
        return ["#" * block.level + " " + md_inline(block.text)]
    if isinstance(block, Paragraph):
        return [md_inline(block.text)]
    if isinstance(block, Bullets):
        return ["- " + md_inline(item) for item in block.items]
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, CodeBlock):
        fence = "````" if "```" in block.text else "```"
        return [fence + block.language, block.text, fence]
    if isinstance(block, Image):
        return [f"![{_md_escape(block.alt)}]({block.link})"]
    raise TypeError(f"not a report block: {block!r}")


def to_markdown(blocks: list[Block]) -> str:
    """Blocks separated by one blank line, ending in a newline."""
    return "\n\n".join("\n".join(_md_block(block)) for block in blocks) + "\n"
