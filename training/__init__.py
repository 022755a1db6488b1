"""The model owner's training: the paper's patient-wise k-fold protocol and the final model (torch)."""
