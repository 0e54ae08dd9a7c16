"""Embedders turn text into unit vectors; see ``base.Embedder``."""
