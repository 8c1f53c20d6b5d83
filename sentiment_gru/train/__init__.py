"""Training: the one loop every task runs (classifier training, language-model pretraining, distillation), its state, checkpoints and processes."""
