"""The Gradio web UI (``refocus ui``): :mod:`refocus.ui.app` builds it, the logic
(caching the expensive stages, preview renders, export) is in :mod:`refocus.ui.session`."""
