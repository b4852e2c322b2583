"""Tooling that never runs per event or per request: the `secevents` command line, the record's JSON Schema,
the catalog's documentation page, the generated monitors (and rules), and the demo.

The runtime never imports this package (a test fails if it does); these modules import the runtime.
"""
