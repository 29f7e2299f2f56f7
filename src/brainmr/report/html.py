"""The Markdown tables as standalone HTML pages, so that the Snakemake report shows them as they
read in table1.md (the table with its notes), not only as bare CSV."""

from __future__ import annotations

from html import escape

STYLE = (
    "body{font-family:sans-serif;font-size:14px;max-width:75em;margin:1em auto}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #bbb;padding:3px 7px;text-align:left}"
    "th{background:#eee}"
)


def markdown_html(markdown: str, title: str) -> str:
    """A complete HTML page of ``markdown`` (CommonMark with tables)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n{body}</body></html>\n"
    )
