"""Text to token ids: the subword tokenizer trained on the train split, and the lexicons whose words become tokens."""
