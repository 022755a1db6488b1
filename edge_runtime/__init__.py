"""The cart's side, torch-free: bundle loading, preprocessing, inference backends, CAM, voting."""
