"""The report as one self-contained HTML file: inline CSS, plots as base64 data URIs, no scripts.

A single file can be mailed, attached to an issue or opened from a USB stick and still show every
plot; nothing is fetched from the network when it is opened.
"""

from __future__ import annotations

import base64
from html import escape

from .document import Block, Bullets, Code, CodeBlock, Heading, Image, Paragraph, Rich, Strong, Table, spans

CSS = """
body { font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; max-width: 980px;
       margin: 2em auto; padding: 0 1em; }
h1, h2, h3 { line-height: 1.25; } h1 { border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 1em 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; } th { background: #f6f8fa; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { background: #f6f8fa; padding: .1em .3em; border-radius: 4px; font-size: 90%; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; border-radius: 6px; } pre code { padding: 0; }
figure { margin: 1em 0; } img { max-width: 100%; height: auto; }
""".strip()


def html_inline(text: Rich) -> str:
    out = []
    for part in spans(text):
        if isinstance(part, Strong):
            out.append(f"<strong>{escape(part.text)}</strong>")
        elif isinstance(part, Code):
            out.append(f"<code>{escape(part.text)}</code>")
        else:
            out.append(escape(part, quote=False))
    return "".join(out)


def _cell(tag: str, content: str, align: str) -> str:
    return f"<{tag} class=\"r\">{content}</{tag}>" if align == "r" else f"<{tag}>{content}</{tag}>"


def _table(table: Table) -> str:
    head = "".join(_cell("th", escape(cell), table.alignment(i)) for i, cell in enumerate(table.header))
    body = "".join(
        "<tr>" + "".join(_cell("td", html_inline(cell), table.alignment(i)) for i, cell in enumerate(row)) + "</tr>\n"
        for row in table.rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _image(image: Image) -> str:
    data = base64.b64encode(image.file.read_bytes()).decode("ascii")
    alt = escape(image.alt)
    return f"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{alt}\"><figcaption>{alt}</figcaption></figure>"


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        level = min(max(block.level, 1), 6)
        return f"<h{level}>{html_inline(block.text)}</h{level}>"
    if isinstance(block, Paragraph):
        return f"<p>{html_inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>\n" + "".join(f"<li>{html_inline(item)}</li>\n" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, CodeBlock):
        language = f" class=\"language-{escape(block.language)}\"" if block.language else ""
        return f"<pre><code{language}>{escape(block.text)}</code></pre>"
    if isinstance(block, Image):
        return _image(block)
    raise TypeError(f"not a report block: {block!r}")


def to_html(blocks: list[Block], title: str) -> str:
    body = "\n".join(_block(block) for block in blocks)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escape(title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
