"""The Chinese edition (locales/zh_CN/LC_MESSAGES, one catalogue per page) is kept in sync and uses the glossary's
terms: at most 2% of its strings untranslated or fuzzy, naming each; every glossary term, where a page that the
glossary names for it uses it, translated by the glossary's Chinese form.

After editing a page, `make translations` extracts its strings again: new ones arrive untranslated and changed
ones fuzzy, and this test names them until they are translated.
"""

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
CATALOGUES = sorted(LOCALE.rglob("*.po"))
MAX_MISSING = 0.02
# what a term is not looked for in: code, maths, link targets and citations stay as they are
VERBATIM = re.compile(r"`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)|\{cite[^}]*\}", re.S)


def messages(path: Path) -> list:
    with open(path, "rb") as f:
        return [m for m in read_po(f) if m.id]


def page(path: Path) -> str:
    return path.relative_to(LOCALE).with_suffix("").as_posix()


def test_every_page_has_a_catalogue():
    pages = {p.relative_to(ROOT).with_suffix("").as_posix() for p in (ROOT / "chapters").glob("*.ipynb")}
    pages |= {p.relative_to(ROOT).with_suffix("").as_posix() for p in (ROOT / "book").glob("*.md")}
    assert pages <= {page(p) for p in CATALOGUES}, "run: make translations"


def test_at_most_two_percent_untranslated_or_fuzzy():
    total, missing = 0, []
    for path in CATALOGUES:
        for m in messages(path):
            total += 1
            if not m.string or m.fuzzy:
                missing.append(f"{page(path)}: {'fuzzy' if m.fuzzy else 'untranslated'}: {m.id[:80]!r}")
    assert total > 2000
    assert len(missing) <= MAX_MISSING * total, (
        f"{len(missing)} of {total} strings are untranslated or fuzzy (at most {MAX_MISSING:.0%}):\n"
        + "\n".join(missing[:50]))


# Where an English word in a string is not the glossary's term (page, term, the words around it, why)
NOT_THE_TERM = [
    ("01_tokens_and_language_models", "embedding", "rotary embeddings", "RoPE's own term, 旋转位置编码, is used"),
    ("03_transformer_and_tiny_gpt", "transformer", "which transformers calls", "the library's name"),
    ("12_instruction_execution", "return", "returns an observation", "the verb, not the sum of rewards"),
    ("12_instruction_execution", "return", "returns the next observation", "the verb, not the sum of rewards"),
]


def glossary() -> list[tuple[str, str, set[str]]]:
    """(English term, Chinese term, the pages it belongs to) for each row of book/glossary.md; a row's pages are
    the chapters its definition names in brackets, e.g. "(05, 06)"."""
    rows = []
    for line in (ROOT / "book" / "glossary.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not line.startswith("| ") or cells[0] in ("English",) or set(cells[0]) <= set("-"):
            continue
        chapters = re.findall(r"\b(\d\d)\b", cells[2][cells[2].rfind("("):])
        pages = {p.stem for p in (ROOT / "chapters").glob("*.ipynb") if p.stem[:2] in chapters}
        rows.append((cells[0], cells[1], pages))
    return rows


def accepted(en: str, zh: str) -> set[str]:
    """The Chinese term, its parts in brackets (alternatives), and an acronym or symbol name kept as it is."""
    forms = {zh, re.split(r"[（(]", zh)[0].strip(), *re.findall(r"[（(]([^）)]*)[）)]", zh)}
    if en.upper() == en or any(c.isupper() for c in en[1:]) or re.search(r"[^A-Za-z \-]", en):
        forms.add(en)                                   # GELU, LSTM, DAgger, recall@k: kept in Chinese text too
    return {f for f in forms if f}


@pytest.mark.parametrize("path", [p for p in CATALOGUES if p.parent.name == "chapters"], ids=lambda p: p.stem[:2])
def test_the_glossarys_terms_are_the_ones_used(path):
    rows = [(re.sub(r"\s*\(.*?\)", "", en).strip(), en, zh) for en, zh, pages in glossary() if path.stem in pages]
    rows.sort(key=lambda r: -len(r[0]))                 # a longer term first: "causal mask" before "mask"
    wrong = []
    for m in messages(path):
        if not m.string or m.string == m.id:
            continue
        text = VERBATIM.sub(" ", m.id)
        for stem, _, words, _ in NOT_THE_TERM:
            if stem == path.stem:
                text = text.replace(words, " ")
        for term, en, zh in rows:
            pattern = r"(?<![\w-])" + re.escape(term) + r"(?:s|es)?(?![\w-])"
            flags = 0 if term.upper() == term else re.I
            if re.search(pattern, text, flags):
                if not any(form in m.string for form in accepted(term, zh)):
                    wrong.append(f"{en!r} should read {zh!r}: {m.id[:70]!r} -> {m.string[:40]!r}")
                text = re.sub(pattern, " ", text, flags=flags)  # a shorter term inside it is not asked for again
    assert not wrong, f"{len(wrong)} strings of {page(path)} without the glossary's term:\n" + "\n".join(wrong)
