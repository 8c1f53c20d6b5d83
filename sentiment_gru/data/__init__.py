"""Labelled text in: the default corpus, hub datasets and the user's files, cleaned and split; token ids batched for training."""
