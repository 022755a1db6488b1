"""Frames and pixels, below everything else in the runtime: the B-mode region, frame → model input
(``preprocess``), DICOM identities and the one DICOM writer. No inference, no files of a source.
"""
