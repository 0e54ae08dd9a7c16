"""Stores keep memories, vectors, a keyword index and history; see ``base.MemoryStore``."""
