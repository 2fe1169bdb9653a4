"""Labelled data for the tests and benches (the recall-quality sets and their scoring)."""
