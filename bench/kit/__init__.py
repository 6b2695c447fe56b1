"""The research toolkit plugins may use: entropy coding, codebook quantization and the message layout,
weighted k-means, pruning, bounds arithmetic, random projections and subspace training, stochastic
classifiers, curvature, and one training loop. It imports nothing from the harness."""
