"""Synthetic B-mode phantoms of the first metatarsophalangeal joint, with ground truth."""
