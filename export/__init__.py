"""The model owner's side (needs the ``torch`` extra): checkpoint → ONNX → INT8 → bundle."""
