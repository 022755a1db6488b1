"""The cart's pipeline, spelled in one place (``stages.compose``, docs/design.md §7): stream →
region → preparation → dedupe → scorer → gates (blank, colour, scope) → key frames → tally, and the
one verdict rule over a tally (``verdict``), which the cart, ``evaluate``, ``calibrate``, the
reference set and the tests share. ``results`` holds the typed outcomes.
"""
