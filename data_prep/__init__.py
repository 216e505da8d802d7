"""Corpus preparation: one module per corpus, each runnable as ``python -m data_prep.<corpus>``."""
