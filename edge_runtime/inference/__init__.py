"""The bundle on the cart and the model in it: opening and checking a bundle (``loading``), the
engines behind one Protocol (``backends``), frames → probability, CAM and pooled features
(``scoring``), the scope guard (``scope_guard``), the CAM's display scale (``cam_scale``), what this
device offers (``device``) and the one latency loop (``timing``).
"""
