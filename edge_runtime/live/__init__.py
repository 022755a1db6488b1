"""The live view while the probe moves: the picture and its words (``render``), the page in the
cart's browser (``web``), an OpenCV window or a progress line (``views``, with ``open_view``).
"""
