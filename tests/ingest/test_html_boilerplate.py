"""Generated documentation pages: navigation, sidebars, footers and permalinks are not indexed.

The Sphinx pages under data/sphinx were built by Sphinx 9.0.4 from data/sphinx/source (themes
alabaster and classic); the MkDocs, Docusaurus and Javadoc pages are the generators' markup
reduced to its chrome around a known body.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ragpipe.ingest.loaders import loader_for
from ragpipe.ingest.loaders.base import LoadedDocument

DATA = Path(__file__).parent / "data" / "sphinx"
SPHINX_CHROME = ("Previous topic", "Next topic", "This Page", "Show Source", "Table of Contents", "Quick search",
                 "Navigation", "Related", "Created using", "Copyright", "index", "previous", "¶")


def load(path: Path) -> LoadedDocument:
    loader = loader_for(path)
    assert loader is not None
    return loader(path)


def words(doc: LoadedDocument) -> set[str]:
    return set(doc.text.replace("\n", " ").split(" "))


@pytest.mark.parametrize("theme", ["alabaster", "classic"])
def test_sphinx_pages_keep_only_their_body(theme):
    doc = load(DATA / theme / "install.html")
    assert doc.text.startswith("Installing widgets\nRun the installer with the --fast option")
    assert "Widgets need forty megabytes of free disk space." in doc.text
    for chrome in SPHINX_CHROME:
        assert chrome not in doc.text, chrome
    assert [s.headings for s in doc.segments] == [["Installing widgets"], ["Installing widgets", "Requirements"]]
    assert doc.title == "Installing widgets — Widgets  documentation"


@pytest.mark.parametrize("theme", ["alabaster", "classic"])
def test_sphinx_index_page_keeps_its_toctree_and_sections(theme):
    doc = load(DATA / theme / "index.html")
    assert "Widgets rotate the cache every night at midnight." in doc.text
    assert "A widget stores its state in a local folder." in doc.text
    assert "Installing widgets" in doc.text  # the page's own table of contents is content
    assert "Next topic" not in doc.text and "¶" not in doc.text
    assert [s.headings for s in doc.segments][-1] == ["Widgets manual", "Overview"]


@pytest.mark.slow
def test_a_freshly_built_sphinx_site(tmp_path):
    """The same checks on a site built now by the installed Sphinx (when there is one)."""
    pytest.importorskip("sphinx")
    src = tmp_path / "src"
    shutil.copytree(DATA / "source", src)
    (src / "conf.py.txt").rename(src / "conf.py")
    subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", "html", str(src), str(tmp_path / "out")],
                   check=True, capture_output=True, timeout=300)
    doc = load(tmp_path / "out" / "install.html")
    assert "forty megabytes" in doc.text
    for chrome in SPHINX_CHROME:
        assert chrome not in doc.text, chrome


MKDOCS_MATERIAL = """<!doctype html><html><head><title>Install - Widgets</title></head><body dir="ltr">
<a href="#install" class="md-skip">Skip to content</a>
<header class="md-header" data-md-component="header"><nav class="md-header__inner md-grid" aria-label="Header">
<div class="md-header__title">Widgets</div><div class="md-search" role="dialog">Type to start searching</div></nav></header>
<div class="md-container"><main class="md-main"><div class="md-main__inner md-grid">
<div class="md-sidebar md-sidebar--primary" data-md-component="sidebar" data-md-type="navigation">
<div class="md-sidebar__scrollwrap"><div class="md-sidebar__inner"><ul class="md-nav__list"><li>Home</li><li>Install</li><li>Reference</li></ul></div></div></div>
<div class="md-sidebar md-sidebar--secondary" data-md-component="sidebar" data-md-type="toc"><div>Table of contents<ul><li>Requirements</li></ul></div></div>
<div class="md-content" data-md-component="content"><article class="md-content__inner md-typeset">
<a href="https://example.org/edit/install.md" title="Edit this page" class="md-content__button md-icon">Edit</a>
<h1 id="install">Install<a class="headerlink" href="#install" title="Permanent link">&para;</a></h1>
<p>Run the installer with the fast option.</p>
<h2 id="requirements">Requirements<a class="headerlink" href="#requirements" title="Permanent link">&para;</a></h2>
<p>Forty megabytes of disk.</p>
</article></div></div></main>
<footer class="md-footer"><nav class="md-footer__inner" aria-label="Footer">Previous Home Next Reference</nav>
<div class="md-copyright">Made with Material for MkDocs</div></footer></div></body></html>"""

DOCUSAURUS = """<!doctype html><html><head><title>Install | Widgets</title></head><body>
<div role="region" aria-label="Skip to main content"><a class="skipToContent_fXgn" href="#__docusaurus_skipToContent_fallback">Skip to main content</a></div>
<nav aria-label="Main" class="navbar navbar--fixed-top"><div class="navbar__inner"><a class="navbar__brand">Widgets</a><a class="navbar__item">Docs</a><a class="navbar__item">Blog</a></div></nav>
<div class="main-wrapper"><div class="docsWrapper_hBAB"><aside class="theme-doc-sidebar-container docSidebarContainer_YfHR">
<div class="sidebarViewport"><ul class="theme-doc-sidebar-menu menu__list"><li>Intro</li><li>Install</li><li>Tutorial</li></ul></div></aside>
<main class="docMainContainer_TBSr"><div class="container"><div class="row"><div class="col docItemCol_VOVn">
<div class="docItemContainer_Djhp"><article><nav class="theme-doc-breadcrumbs breadcrumbsContainer_Z_bl" aria-label="Breadcrumbs"><ul><li>Docs</li><li>Install</li></ul></nav>
<div class="theme-doc-markdown markdown"><header><h1>Install</h1></header>
<p>Run the installer with the fast option.</p>
<h2 class="anchor anchorWithStickyNavbar_LWe7" id="requirements">Requirements<a href="#requirements" class="hash-link" aria-label="Direct link to Requirements" title="Direct link to Requirements">&#8203;</a></h2>
<p>Forty megabytes of disk.</p></div>
<footer class="theme-doc-footer docusaurus-mt-lg"><div class="theme-edit-this-page">Edit this page</div></footer></article>
<nav class="pagination-nav docusaurus-mt-lg" aria-label="Docs pages"><a class="pagination-nav__link--prev">Previous Intro</a><a class="pagination-nav__link--next">Next Tutorial</a></nav></div></div>
<div class="col col--3"><div class="tableOfContents_bqdL thin-scrollbar theme-doc-toc-desktop"><ul class="table-of-contents"><li>Requirements</li></ul></div></div></div></div></main></div></div>
<footer class="footer footer--dark"><div class="footer__copyright">Copyright 2026 Widgets. Built with Docusaurus.</div></footer></body></html>"""

JAVADOC = """<!DOCTYPE HTML><html lang="en"><head><title>Installer (widgets 1.0 API)</title></head>
<body class="class-declaration-page"><div class="flex-box">
<header role="banner" class="flex-header"><nav role="navigation"><div class="top-nav" id="navbar-top">
<div class="skip-nav"><a href="#skip-navbar-top" title="Skip navigation links">Skip navigation links</a></div>
<ul id="navbar-top-firstrow" class="nav-list" title="Navigation"><li><a href="../package-summary.html">Package</a></li><li class="nav-bar-cell1-rev">Class</li><li><a href="package-tree.html">Tree</a></li><li><a href="../index-all.html">Index</a></li><li><a href="../help-doc.html">Help</a></li></ul></div>
<div class="sub-nav"><div><ul class="sub-nav-list"><li>Summary:&nbsp;</li><li>Nested&nbsp;|&nbsp;</li><li>Field&nbsp;|&nbsp;</li></ul></div></div></nav></header>
<div class="flex-content"><main role="main"><div class="header"><div class="sub-title">Package widgets</div>
<h1 title="Class Installer" class="title">Class Installer</h1></div>
<section class="class-description" id="class-description"><div class="block">Installs widgets with the fast option.</div></section>
<section class="method-details" id="method-detail"><h2>Method Details</h2><section class="detail" id="run()"><h3>run</h3>
<div class="member-signature">public void run()</div><div class="block">Checks for forty megabytes of disk, then installs.</div></section></section></main>
<footer role="contentinfo"><hr><p class="legal-copy"><small>Copyright 2026 Widgets Inc. All rights reserved.</small></p></footer></div></div></body></html>"""


@pytest.mark.parametrize(
    ("name", "html", "chrome"),
    [
        ("mkdocs.html", MKDOCS_MATERIAL,
         ("Skip to content", "Type to start searching", "Reference", "Table of contents", "Made with", "Edit", "¶")),
        ("docusaurus.html", DOCUSAURUS,
         ("Skip to main content", "Blog", "Tutorial", "Breadcrumbs", "Edit this page", "Previous", "Copyright", "\u200b")),
        ("javadoc.html", JAVADOC,
         ("Skip navigation links", "Package summary", "Tree", "Help", "Summary:", "Nested", "Copyright")),
    ],
)
def test_generator_chrome_is_dropped(tmp_path, name, html, chrome):
    (tmp_path / name).write_text(html)
    doc = load(tmp_path / name)
    for text in chrome:
        assert text not in doc.text, text
    assert "fast option" in doc.text and "orty megabytes of disk" in doc.text
    if name != "javadoc.html":
        assert [s.headings for s in doc.segments] == [["Install"], ["Install", "Requirements"]]


def test_a_page_without_landmarks_keeps_all_its_visible_text(tmp_path):
    (tmp_path / "plain.html").write_text("<html><body><div>Loose text.</div><p>A paragraph.</p></body></html>")
    assert "A paragraph." in load(tmp_path / "plain.html").text
    (tmp_path / "bare.html").write_text("<div>Only a div of text here.</div>")
    assert load(tmp_path / "bare.html").text == "Only a div of text here."
