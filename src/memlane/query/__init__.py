"""What a search asks for, in the terms every store compiles: the filter language's AST
(``query.filters``) and keyword tokens (``query.keywords``). Scopes and records live beside it
in ``memlane.records``.

This layer sits below both the engine and the stores: the engine parses callers' filters into
it, each store compiles it to its own query language, and neither imports the other.
"""
