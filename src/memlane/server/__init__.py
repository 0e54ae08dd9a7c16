"""``memlane serve``: the OpenAI-compatible proxy and the memory REST API over one engine."""
