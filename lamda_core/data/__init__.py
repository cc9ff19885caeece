"""Reading training data: classification tables, plain text blocks and conversations (instruction
data), and the built-in demo datasets."""
