"""Using a finished run: inference (predict, generate, chat), evaluation, export and the analysis of
what training changed."""
