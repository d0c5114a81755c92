"""The response cache: exact-match on the normalized request, stored in the state layer."""
