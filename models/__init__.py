"""Detection models: architectures, training, serving signatures and RunInference handlers."""
