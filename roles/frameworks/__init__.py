"""Frameworks role: TensorFlow and PyTorch builds the plan chose, and the training check."""
