"""A report page (title, sections of text, figures and tables) written as HTML and Markdown.

The HTML is self-contained: the style sheet is inline, there are no scripts and no
external addresses; figures are PNG files in the report folder, linked by relative path,
so the folder can be zipped, moved or served as it is.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from ..storage import atomic_write_bytes
from .tables import Table

HTML_NAME = "index.html"
MARKDOWN_NAME = "report.md"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #eee; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; max-width: 560px; }
.table { overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: .85em; }
caption { text-align: left; font-weight: 600; padding: .3em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
table.compact td { white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafafa; }
.note { font-size: .85em; color: #555; margin: .3em 0 0 0; max-width: 900px; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


@dataclass
class FigureRef:
    """A figure file of the report and its caption.

    Attributes:
        path: file name relative to the report folder, e.g. ``figures/accuracy.png``.
        caption: one sentence saying what the figure shows.
    """

    path: str
    caption: str


@dataclass
class Section:
    """A headed part of the page: paragraphs, then figures, then tables.

    Attributes:
        title: the heading.
        paragraphs: plain text; text between backticks is shown as code.
        figures: figures in this section.
        tables: tables in this section.
    """

    title: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[FigureRef] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


@dataclass
class Page:
    """The whole report.

    Attributes:
        title: page title and top heading.
        intro: paragraphs under the title.
        sections: the sections, in order.
    """

    title: str
    intro: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


def render_html(page: Page) -> str:
    """The page as one HTML document with an inline style sheet and relative image links."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{html.escape(page.title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
             f"<h1>{html.escape(page.title)}</h1>"]
    parts += [_paragraph(p) for p in page.intro]
    for section in page.sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [_paragraph(p) for p in section.paragraphs]
        for fig in section.figures:
            src = html.escape(fig.path, quote=True)
            parts.append(f'<figure><img src="{src}" alt="{html.escape(fig.caption, quote=True)}">'
                         f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>")
        parts += [table.to_html() for table in section.tables]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def render_markdown(page: Page) -> str:
    """The same page as Markdown, images linked by the same relative paths."""
    parts = [f"# {page.title}", ""]
    for p in page.intro:
        parts += [p, ""]
    for section in page.sections:
        parts += [f"## {section.title}", ""]
        for p in section.paragraphs:
            parts += [p, ""]
        for fig in section.figures:
            parts += [f"![{fig.caption}]({fig.path})", "", f"*{fig.caption}*", ""]
        for table in section.tables:
            parts += [table.to_markdown()]
    return "\n".join(parts).rstrip() + "\n"


def write_page(page: Page, folder: str | Path) -> tuple[Path, Path]:
    """Write ``index.html`` and ``report.md`` into ``folder``. Returns both paths."""
    folder = Path(folder)
    html_path, markdown_path = folder / HTML_NAME, folder / MARKDOWN_NAME
    atomic_write_bytes(html_path, render_html(page).encode())
    atomic_write_bytes(markdown_path, render_markdown(page).encode())
    return html_path, markdown_path


def _paragraph(text: str) -> str:
    # backticks mark commands and file names; everything else is escaped plain text
    pieces = html.escape(text).split("`")
    return "<p>" + "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces)) + "</p>"
