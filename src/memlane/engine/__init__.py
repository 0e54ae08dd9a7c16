"""The engine: Memory/AsyncMemory, inference, filters, ranking."""
