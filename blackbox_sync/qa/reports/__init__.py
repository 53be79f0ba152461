"""Report writers: JUnit XML, HTML, CSV and Markdown, all from the canonical result model."""

from blackbox_sync.qa.reports import csvtable, htmlpage, junit, markdown

__all__ = ["csvtable", "htmlpage", "junit", "markdown"]
