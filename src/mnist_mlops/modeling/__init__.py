"""Model code used by the training nodes: CNN, train loop, LiteRT export, plots."""
