"""LLMs that serve the two JSON stages of memory inference; see ``base.LLM``."""
