"""Data (index tables, synthetic phantoms), training, threshold calibration and statistics."""
