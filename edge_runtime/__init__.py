"""The cart's side, torch-free, in layers that point one way (docs/design.md §3; import-linter
enforces them): ``imaging`` ← ``sources`` | ``inference`` ← ``pipeline`` ← ``present`` ← ``exam`` ←
``live`` | ``field`` | ``network``."""
