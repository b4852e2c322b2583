"""The local replay engine behind `graffer_secevents.detect`: query parser, rule compiler, evaluator, geo
lookup, record loading and the `secevents report` pictures. Tooling: the runtime never imports it."""
