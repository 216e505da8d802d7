"""The official Grad-TTS symbol table (keithito/tacotron lineage), in its exact order.

Index 0 is the pad ``_``, then ``-``, punctuation and space, 52 letters, and the 84 ``@``-prefixed
ARPAbet phones; 148 symbols in all. The blank interspersed between tokens takes id ``len(symbols)``,
so the official model's vocabulary is 149.
"""

PAD = "_"
SPECIAL = "-"
PUNCTUATION = "!'(),.:;? "
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_VOWELS = ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"]
_CONSONANTS = ["B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
               "T", "TH", "V", "W", "Y", "Z", "ZH"]


def _arpabet_inventory() -> list[str]:
    # Vowels appear bare and with stress 0/1/2; the table is sorted alphabetically as in CMUdict's list.
    phones = list(_CONSONANTS)
    for v in _VOWELS:
        phones += [v, v + "0", v + "1", v + "2"]
    return sorted(phones)


ARPABET: list[str] = _arpabet_inventory()
ARPABET_SET = frozenset(ARPABET)

symbols: list[str] = [PAD] + list(SPECIAL) + list(PUNCTUATION) + list(LETTERS) + ["@" + p for p in ARPABET]

SYMBOL_TO_ID: dict[str, int] = {s: i for i, s in enumerate(symbols)}
ID_TO_SYMBOL: dict[int, str] = dict(enumerate(symbols))

BLANK_ID: int = len(symbols)
N_VOCAB: int = len(symbols) + 1
