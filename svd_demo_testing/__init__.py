"""Support for testing svd-demo without the model hub: tiny random-weight models with the real configs.

Outside the runtime package: the app never imports it. `svd-demo tiny-models DIR` builds them for the offline
quickstart, and the test suite builds them once per session.
"""
