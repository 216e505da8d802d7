"""Spelling out numbers, currency, decimals and ordinals the way the official checkpoints saw them.

Order matters and is part of the contract: dates are read first, then thousands separators are
removed, then pounds, dollars, decimals, ordinals, and finally bare integers. Integers strictly between
1000 and 3000 are read as years ("1865" -> "eighteen sixty-five").

Dates are an addition to the official pipeline (which read "1/2/2020" as "one/two/twenty twenty"): a
``M/D/YYYY`` span that is a real calendar date is read in US month/day order, "1/2/2020" ->
"january second twenty twenty" (so "3/4/2021" is March 4th, never 3 April). Spans that are no date in
that order ("31/12/2020"), two-digit years and fractions ("1/2") keep the official reading.
"""

from __future__ import annotations

import datetime
import re
from functools import lru_cache

_THOUSANDS = re.compile(r"([0-9][0-9,]+[0-9])")
_DECIMAL = re.compile(r"([0-9]+\.[0-9]+)")
_POUNDS = re.compile(r"£([0-9,]*[0-9]+)")
_DOLLARS = re.compile(r"\$([0-9.,]*[0-9]+)")
_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_INTEGER = re.compile(r"[0-9]+")
# Month/day/four-digit year, not inside a longer run of digits and slashes ("1/2/2020/3" is no date).
_DATE = re.compile(r"(?<![0-9/])([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})(?![0-9/])")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")


@lru_cache(maxsize=1)
def _engine():
    import inflect

    return inflect.engine()


def _unit(count: int, singular: str) -> str:
    return singular if count == 1 else singular + "s"


def _dollars(m: re.Match) -> str:
    amount = m.group(1)
    parts = amount.split(".")
    if len(parts) > 2:
        return amount + " dollars"
    dollars = int(parts[0]) if parts[0] else 0
    cents = int(parts[1]) if len(parts) > 1 and parts[1] else 0
    if dollars and cents:
        return f"{dollars} {_unit(dollars, 'dollar')}, {cents} {_unit(cents, 'cent')}"
    if dollars:
        return f"{dollars} {_unit(dollars, 'dollar')}"
    if cents:
        return f"{cents} {_unit(cents, 'cent')}"
    return "zero dollars"


def _integer(m: re.Match) -> str:
    return _say_integer(int(m.group(0)))


def _say_integer(n: int) -> str:
    words = _engine().number_to_words
    if 1000 < n < 3000:
        if n == 2000:
            return "two thousand"
        if 2000 < n < 2010:
            return "two thousand " + words(n % 100)
        if n % 100 == 0:
            return words(n // 100) + " hundred"
        return words(n, andword="", zero="oh", group=2).replace(", ", " ")
    return words(n, andword="")


def _date(m: re.Match) -> str:
    month, day, year = (int(g) for g in m.groups())
    try:
        datetime.date(year, month, day)
    except ValueError:  # not a calendar date in month/day order: leave it to the number rules
        return m.group(0)
    engine = _engine()
    return f"{_MONTHS[month - 1]} {engine.number_to_words(engine.ordinal(day))} {_say_integer(year)}"


def normalize_numbers(text: str) -> str:
    """Replace every number-like span of ``text`` by English words (``M/D/YYYY`` dates in US order)."""
    text = _DATE.sub(_date, text)
    text = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _POUNDS.sub(r"\1 pounds", text)
    text = _DOLLARS.sub(_dollars, text)
    text = _DECIMAL.sub(lambda m: m.group(1).replace(".", " point "), text)
    text = _ORDINAL.sub(lambda m: _engine().number_to_words(m.group(0)), text)
    return _INTEGER.sub(_integer, text)
