"""report.html: the report as one self-contained file (charts embedded as data URIs, styles
inline, no script, nothing fetched), readable when attached to a ticket or opened from a CI
system's artifacts.

It renders the Markdown the harness writes (``report.md``: headings, paragraphs, lists, pipe
tables, inline code, images of the result's own folder), not Markdown at large.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from bankstream.files import write_whole

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
  padding: 0 1em; color: #1d1d1f; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em;
  border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
th { background: #f3f3f3; }
code { background: #f3f3f3; padding: 0 .2em; border-radius: 3px; }
img { max-width: 100%; display: block; margin: .8em 0; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
"""

IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`]+)`")
BOLD = re.compile(r"\*\*([^*]+)\*\*")
VERDICT = re.compile(r"\b(PASS|FAIL)\b")
TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}


def render(markdown: str, folder: Path, title: str) -> str:
    """``markdown`` (a report of the harness) as a whole HTML page; images named relative to
    ``folder`` are embedded, any other reference is left as its text."""
    body: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            body.append(f"<h{level}>{_inline(line[level:].strip(), folder)}</h{level}>")
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            body.append(_table(rows, folder))
        elif line.startswith(("- ", "* ")):
            items = []
            while i < len(lines) and lines[i].startswith(("- ", "* ")):
                items.append(f"<li>{_inline(lines[i][2:], folder)}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
        else:
            paragraph = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|")):
                if lines[i].startswith(("- ", "* ")):
                    break
                paragraph.append(lines[i])
                i += 1
            body.append(f"<p>{_inline(' '.join(paragraph), folder)}</p>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _table(rows: list[str], folder: Path) -> str:
    header, *rest = rows
    if rest and set(rest[0].replace("|", "").strip()) <= set("-: "):
        rest = rest[1:]
    head = "".join(f"<th>{_inline(c, folder)}</th>" for c in _cells(header))
    body = "".join(
        "<tr>" + "".join(f"<td>{_inline(c, folder)}</td>" for c in _cells(row)) + "</tr>"
        for row in rest
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _inline(text: str, folder: Path) -> str:
    """Escaped text with inline code, bold, verdict words and embedded images."""
    out: list[str] = []
    last = 0
    for match in IMAGE.finditer(text):
        out.append(_words(text[last : match.start()]))
        out.append(_image(match.group(1), match.group(2), folder))
        last = match.end()
    out.append(_words(text[last:]))
    return "".join(out)


def _words(text: str) -> str:
    escaped = html.escape(text)
    escaped = CODE.sub(r"<code>\1</code>", escaped)
    escaped = BOLD.sub(r"<strong>\1</strong>", escaped)
    return VERDICT.sub(lambda m: f'<span class="{m.group(1).lower()}">{m.group(1)}</span>', escaped)


def _image(alt: str, name: str, folder: Path) -> str:
    """An image of the result's folder as a data URI (a missing one: its name, said so)."""
    path = folder / name
    kind = TYPES.get(path.suffix.lower())
    inside = path.resolve().parent == folder.resolve()
    if kind is None or not inside or not path.is_file():
        return f"<em>{html.escape(alt or name)}: not drawn</em>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt, quote=True)}" src="data:{kind};base64,{data}">'


def write(markdown: str, folder: Path, title: str) -> Path:
    """``report.html`` beside ``report.md`` in ``folder``."""
    return write_whole(folder / "report.html", render(markdown, folder, title))
