"""Models: loading (default MiniLM, tiny Llama / GPT-2, folders, hub ids), adaptable matrices, summaries."""
