"""A small Django shop whose security events come from graffer_secevents with no event code for logins."""
