"""The network: embedding (with lexicon categories), the bidirectional GRU encoder and its fast kernels, pooling and the classifier. No I/O."""
