"""The test suite's shared helpers and fakes, imported as ``support.<module>`` (pytest puts tests/
on ``sys.path``): one copy of each, never a test module importing another (tests/test_suite_rules.py).
Shared fixtures are in tests/conftest.py.

- ``bundles``: the small input size, random-weight checkpoints, whole-bundle and graph-only export,
  calibrated copies of the session's bundle.
- ``screens``: synthetic scanner screens, DICOM files, MJPG videos, still frames.
- ``fakes``: stand-ins (a scorer whose probability the test sets).
- ``cli``: ``gout-edge`` as a cart runs it (torch blocked).
- ``toy_data``: a tiny labelled PNG data set with its index table.
- ``json_schemas``: the published schemas of ``--json`` output, and a validator.
- ``pacs``, ``studies``, ``shadow_archive``: an in-process PACS, small ultrasound studies, a hospital
  archive (network and shadow tests).
"""
