"""pytest plugin (entry point ``pytest11``): the log-schema check for a service's own tests."""
