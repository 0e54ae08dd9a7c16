"""The drop-in client: OpenAI-shaped chat calls that recall and learn (product.md section 1)."""
