"""Datasets and batching: text corpora and vocabularies, read from installed packages or files."""
