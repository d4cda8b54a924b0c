"""Checks of the book's own files (no build): the bundled CJK subset font covers the book's Chinese text.

The book bundles book/_static/fonts/NotoSansCJKsc-course.woff, a subset of Noto Sans CJK SC (SIL OFL 1.1,
licence beside it) holding only the CJK characters that the book's text uses, plus CJK punctuation, so
that pages show Chinese on a machine without CJK fonts (book/_static/course.css). After adding Chinese
text, regenerate the subset from the repository root. The font comes from Debian's fonts-noto-cjk, which
need not be installed: `apt-get download fonts-noto-cjk && dpkg-deb -x fonts-noto-cjk_*.deb /tmp/noto`
puts it under /tmp/noto/usr/share/fonts/opentype/noto/ (installed, it is in /usr/share/fonts/opentype/noto/).

    .venv/bin/python tests/test_book.py > /tmp/cjk.txt
    .venv/bin/pyftsubset /tmp/noto/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc --font-number=2 \\
        --text-file=/tmp/cjk.txt --no-hinting --desubroutinize \\
        --flavor=woff --output-file=book/_static/fonts/NotoSansCJKsc-course.woff

The Chinese edition (locales/zh_CN) shares the font: its translations count as the book's text.

(--font-number=2 picks Noto Sans CJK SC in the collection; fontTools.ttLib.TTCollection lists the faces.)
WOFF, not WOFF2, so that fontTools reads it without the brotli package.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FONT = ROOT / "book" / "_static" / "fonts" / "NotoSansCJKsc-course.woff"
CSS = ROOT / "book" / "_static" / "course.css"

# CJK scripts and CJK punctuation: radicals, CJK symbols and punctuation, kana, bopomofo, CJK strokes,
# unified ideographs (extension A and the main block), compatibility ideographs and forms, full-width
# forms, and the supplementary ideograph planes.
CJK = re.compile(
    "[\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u31c0-\u31ef\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003134f]"
)
# Always in the subset, used or not: the CJK punctuation block and the full-width forms of ASCII.
PUNCTUATION = "".join(chr(c) for c in [*range(0x3000, 0x3040), *range(0xFF01, 0xFF66)])


def book_texts() -> dict[str, str]:
    """The text of every file whose characters the book shows: book/*.md, book/references.bib, and the
    Markdown cells of chapters/*.ipynb."""
    texts = {}
    for path in sorted((ROOT / "book").glob("*.md")) + [ROOT / "book" / "references.bib"]:
        texts[path.relative_to(ROOT).as_posix()] = path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        texts[path.relative_to(ROOT).as_posix()] = "\n".join(
            "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for cell in cells
            if cell["cell_type"] == "markdown"
        )
    return texts


def all_texts() -> dict[str, str]:
    """What both editions show: the English edition's text and every translation in locales/zh_CN/LC_MESSAGES
    (the Chinese edition shares the font, and its code and untranslated strings are the English ones)."""
    from babel.messages.pofile import read_po

    texts = book_texts()
    for path in sorted((ROOT / "locales" / "zh_CN" / "LC_MESSAGES").rglob("*.po")):
        with open(path, "rb") as f:
            texts[path.relative_to(ROOT).as_posix()] = "\n".join(m.string for m in read_po(f) if m.id)
    return texts


def cjk_characters(texts: dict[str, str]) -> dict[str, str]:
    """Each CJK character in `texts`, with the first file it appears in."""
    where = {}
    for name, text in texts.items():
        for char in CJK.findall(text):
            where.setdefault(char, name)
    return where


def subset_text() -> str:
    """The characters the subset font holds: those both editions use, and the CJK punctuation."""
    return "".join(sorted(set(cjk_characters(all_texts())) | set(PUNCTUATION))) + "\n"


def test_cjk_pattern():
    found = cjk_characters({"a.md": "Glossary 术语表（中文）: attention, 注意力。", "b.md": "ASCII only, é, —"})
    assert "".join(found) == "术语表（中文）注意力。"
    assert set(found.values()) == {"a.md"}


def test_subset_font_covers_the_books_cjk_text():
    ttLib = pytest.importorskip("fontTools.ttLib")
    cmap = ttLib.TTFont(FONT).getBestCmap()
    missing = {char: name for char, name in cjk_characters(all_texts()).items() if ord(char) not in cmap}
    assert not missing, (
        f"{len(missing)} CJK characters are not in {FONT.relative_to(ROOT)}; regenerate the subset "
        "(see this file's docstring): "
        + ", ".join(f"{char} (U+{ord(char):04X}, {name})" for char, name in sorted(missing.items()))
    )
    assert all(ord(char) in cmap for char in PUNCTUATION), "the subset lost the CJK punctuation"


def test_subset_font_is_bundled_with_its_licence_and_used_by_the_css():
    assert (FONT.parent / "OFL.txt").is_file(), "the font's SIL Open Font License must travel with it"
    assert FONT.stat().st_size < 1_000_000, "the subset should stay small: only the characters used"
    css = CSS.read_text(encoding="utf-8")
    assert f"fonts/{FONT.name}" in css, f"{CSS.name} has no @font-face for {FONT.name}"


if __name__ == "__main__":
    sys.stdout.write(subset_text())
